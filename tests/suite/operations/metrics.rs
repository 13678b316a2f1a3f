//! The Prometheus endpoint: counters move with the calls made.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestDb;
use crate::support::server::TestServer;
use crate::support::services::{create_service, exchange, token_of, verify};

pub(crate) async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of the first sample whose line starts with `series`.
pub(crate) fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_with_the_calls_made() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["tokens.verify"]).await;
    let server = TestServer::build(db).metrics().start().await;
    let metrics_addr = server.metrics.unwrap();
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;

    let exchange_series = "portcullis_rpc_requests_total{method=\"/portcullis.v1.ServiceCredentials/ExchangeServiceCredential\",code=\"Ok\"}";
    let before = scrape(metrics_addr).await;
    token_of(&channel, &service).await;
    exchange(&channel, service.key.as_str(), "wrong", &[])
        .await
        .unwrap_err();
    verify(&channel, &token, &token).await.unwrap();
    let after = scrape(metrics_addr).await;

    assert!(
        value(&after, exchange_series) >= value(&before, exchange_series) + 1.0,
        "{after}"
    );
    assert!(
        value(
            &after,
            "portcullis_token_exchanges_total{outcome=\"refused\"}"
        ) >= value(
            &before,
            "portcullis_token_exchanges_total{outcome=\"refused\"}"
        ) + 1.0
    );
    assert!(
        value(&after, "portcullis_rpc_duration_seconds_count")
            > value(&before, "portcullis_rpc_duration_seconds_count")
    );
    for gauge in [
        "portcullis_db_pool_connections",
        "portcullis_db_pool_in_use",
        "portcullis_db_pool_waiting",
        "portcullis_password_hashing_queue",
    ] {
        assert!(
            after.lines().any(|l| l.starts_with(gauge)),
            "{gauge} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_are_counted_under_one_label() {
    let test = TestDb::new().await;
    let server = TestServer::build(test.db()).metrics().start().await;
    let metrics_addr = server.metrics.unwrap();
    let channel = server.channel().await;
    // What a scanner would send: made-up paths, each new.
    for path in [
        "/made.up.Service/Probe7f3a9",
        "/portcullis.v1.Authorization/Nope7f3a9",
        "/grpc.reflection.v1alpha.Made7f3a9/Up",
    ] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let refused = grpc
            .unary::<(), (), _>(
                tonic::Request::new(()),
                http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        assert!(refused.is_err(), "{path}");
    }
    let text = scrape(metrics_addr).await;
    assert!(
        !text.contains("7f3a9"),
        "a raw path reached the metrics:\n{text}"
    );
    assert!(
        value(&text, "portcullis_rpc_requests_total{method=\"unknown\"") >= 3.0,
        "{text}"
    );
}
