//! A load's reports as plain-text tables: what each scenario did, and what
//! its measured window cost in CPU.

use super::load::ScenarioReport;

/// A plain-text table of reports.
pub fn table(reports: &[ScenarioReport]) -> String {
    let mut out = format!(
        "{:<12} {:>4} {:>4} {:>9} {:>7} {:>10} {:>12} {:>8} {:>8} {:>8} {:>8}\n",
        "scenario",
        "conc",
        "conn",
        "requests",
        "errors",
        "req/s",
        "decisions/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms"
    );
    for r in reports {
        out += &format!(
            "{:<12} {:>4} {:>4} {:>9} {:>7} {:>10.0} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
            r.scenario.name(),
            r.concurrency,
            r.connections,
            r.requests,
            r.errors,
            r.per_second,
            r.decisions_per_second,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms
        );
    }
    for r in reports.iter().filter(|r| !r.error_codes.is_empty()) {
        let codes: Vec<String> = r
            .error_codes
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        out += &format!("{} errors: {}\n", r.scenario.name(), codes.join(", "));
    }
    out
}

/// A plain-text table of what the reports' windows cost in CPU.
pub fn cpu_table(reports: &[ScenarioReport]) -> String {
    let mut out = format!(
        "{:<13} {:>13} {:>13} {:>13} {:>14} {:>9} {:>15} {:>14} {:>6}\n",
        "CPU ms/req",
        "server",
        "postgres",
        "client",
        "server/decis.",
        "xact/req",
        "round trips/req",
        "WAL flushes/req",
        "cores"
    );
    for r in reports {
        let Some(cpu) = &r.cpu else { continue };
        let optional = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.3}"));
        out += &format!(
            "{:<13} {:>13.3} {:>13.3} {:>13.3} {:>14} {:>9} {:>15} {:>14} {:>6.2}\n",
            r.scenario.name(),
            cpu.server_seconds_per_1k_requests,
            cpu.postgres_seconds_per_1k_requests,
            cpu.client_seconds_per_1k_requests,
            optional(cpu.server_seconds_per_1k_decisions),
            optional(cpu.postgres_transactions_per_request),
            optional(cpu.round_trips_per_request),
            optional(cpu.wal_flushes_per_request),
            cpu.cores_busy
        );
    }
    out
}
