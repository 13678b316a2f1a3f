//! `docs/reference/api.md` is the proto files' comments, rendered from the
//! descriptor set the server serves by reflection (compiled with source
//! info by `build.rs`).

use std::collections::HashMap;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};

use super::cell;

const PACKAGE: &str = "portcullis.v1";

#[test]
fn the_api_page_is_the_protos_comments() {
    expect_test::expect_file!["../../../docs/reference/api.md"].assert_eq(&render(&files()));
}

#[test]
fn every_service_rpc_message_field_and_enum_value_has_a_comment() {
    let mut missing = Vec::new();
    for file in files() {
        let comments = Comments::of(&file);
        for (s, service) in file.service.iter().enumerate() {
            let name = service.name();
            if comments.at(&[6, s as i32]).is_empty() {
                missing.push(format!("service {name}"));
            }
            for (m, method) in service.method.iter().enumerate() {
                if comments.at(&[6, s as i32, 2, m as i32]).is_empty() {
                    missing.push(format!("rpc {name}.{}", method.name()));
                }
            }
        }
        for_each_message(&file.message_type, &[4], "", &mut |path, name, message| {
            if message.options.as_ref().is_some_and(|o| o.map_entry()) {
                return;
            }
            if comments.at(path).is_empty() {
                missing.push(format!("message {name}"));
            }
            for (f, field) in message.field.iter().enumerate() {
                if comments.at(&[path, &[2, f as i32]].concat()).is_empty() {
                    missing.push(format!("field {name}.{}", field.name()));
                }
            }
            for (e, inner) in message.enum_type.iter().enumerate() {
                let enum_path = [path, &[4, e as i32]].concat();
                missing.extend(missing_in_enum(
                    &comments,
                    &enum_path,
                    &format!("{name}.{}", inner.name()),
                    inner,
                ));
            }
        });
        for (e, inner) in file.enum_type.iter().enumerate() {
            missing.extend(missing_in_enum(
                &comments,
                &[5, e as i32],
                inner.name(),
                inner,
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "{} elements of proto/portcullis/v1 have no comment: {}",
        missing.len(),
        missing.join(", ")
    );
}

fn missing_in_enum(
    comments: &Comments,
    path: &[i32],
    name: &str,
    inner: &prost_types::EnumDescriptorProto,
) -> Vec<String> {
    let mut missing = Vec::new();
    if comments.at(path).is_empty() {
        missing.push(format!("enum {name}"));
    }
    for (v, value) in inner.value.iter().enumerate() {
        if comments.at(&[path, &[2, v as i32]].concat()).is_empty() {
            missing.push(format!("value {name}.{}", value.name()));
        }
    }
    missing
}

/// Our proto files, in the order `build.rs` compiles them.
fn files() -> Vec<FileDescriptorProto> {
    FileDescriptorSet::decode(portcullis::proto::FILE_DESCRIPTOR_SET)
        .expect("the served descriptor set decodes")
        .file
        .into_iter()
        .filter(|file| file.package() == PACKAGE)
        .collect()
}

/// A file's comments by descriptor path (`[4, 0, 2, 1]`: the first
/// message's second field).
struct Comments(HashMap<Vec<i32>, String>);

impl Comments {
    fn of(file: &FileDescriptorProto) -> Self {
        let locations = file.source_code_info.iter().flat_map(|info| &info.location);
        Self(
            locations
                .map(|location| {
                    let text = location
                        .leading_comments
                        .as_deref()
                        .or(location.trailing_comments.as_deref())
                        .unwrap_or_default();
                    (location.path.clone(), paragraphs(text))
                })
                .collect(),
        )
    }

    fn at(&self, path: &[i32]) -> &str {
        self.0.get(path).map(String::as_str).unwrap_or_default()
    }
}

/// A comment's lines without their one leading space, blank lines kept.
fn paragraphs(comment: &str) -> String {
    comment
        .lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

fn for_each_message(
    messages: &[DescriptorProto],
    parent: &[i32],
    prefix: &str,
    visit: &mut dyn FnMut(&[i32], &str, &DescriptorProto),
) {
    for (m, message) in messages.iter().enumerate() {
        let path = [parent, &[m as i32]].concat();
        let name = format!("{prefix}{}", message.name());
        visit(&path, &name, message);
        let nested = [path.as_slice(), &[3]].concat();
        for_each_message(&message.nested_type, &nested, &format!("{name}."), visit);
    }
}

/// mdBook's heading id: lower case, letters, digits, `-` and `_` kept,
/// spaces made `-`, anything else dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_ascii_lowercase()),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

/// A type, linked to its section when it is ours.
fn type_link(full_name: &str) -> String {
    match full_name.strip_prefix(&format!(".{PACKAGE}.")) {
        Some(ours) => format!("[`{ours}`](#{})", anchor(ours)),
        None => format!("`{}`", full_name.trim_start_matches('.')),
    }
}

fn field_type(field: &FieldDescriptorProto, maps: &HashMap<String, String>) -> String {
    if let Some(map) = maps.get(field.type_name()) {
        return map.clone();
    }
    let base = match field.r#type() {
        Type::Message | Type::Enum => type_link(field.type_name()),
        scalar => format!(
            "`{}`",
            scalar
                .as_str_name()
                .trim_start_matches("TYPE_")
                .to_lowercase()
        ),
    };
    if field.label() == Label::Repeated {
        format!("repeated {base}")
    } else if field.proto3_optional() {
        format!("optional {base}")
    } else {
        base
    }
}

fn render(files: &[FileDescriptorProto]) -> String {
    let mut page = String::from(
        "# API

Generated from the comments in `proto/portcullis/v1/` by the test
`reference::api`, which also fails on a service, RPC, message, field or enum
value without one. Field names are the proto's; JSON (grpcurl, gRPC
transcoding) spells them in lowerCamelCase. Errors and their reasons:
[Errors](errors.md). The same descriptors are served by reflection:
`grpcurl -plaintext 127.0.0.1:50051 describe portcullis.v1.Authorization`.
",
    );
    for file in files {
        let comments = Comments::of(file);
        page.push_str(&format!("\n## `{}`\n", file.name()));
        for (s, service) in file.service.iter().enumerate() {
            let name = format!("{PACKAGE}.{}", service.name());
            page.push_str(&format!(
                "\n### `{name}`\n\n{}\n\n",
                comments.at(&[6, s as i32])
            ));
            page.push_str("| RPC | request | response | what it does |\n|---|---|---|---|\n");
            for (m, method) in service.method.iter().enumerate() {
                page.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    method.name(),
                    type_link(method.input_type()),
                    type_link(method.output_type()),
                    cell(comments.at(&[6, s as i32, 2, m as i32])),
                ));
            }
        }
        let mut maps = HashMap::new();
        for_each_message(&file.message_type, &[4], "", &mut |_, name, message| {
            if message.options.as_ref().is_some_and(|o| o.map_entry()) {
                let (key, value) = (&message.field[0], &message.field[1]);
                let empty = HashMap::new();
                maps.insert(
                    format!(".{PACKAGE}.{name}"),
                    format!(
                        "map<{}, {}>",
                        field_type(key, &empty),
                        field_type(value, &empty)
                    ),
                );
            }
        });
        for_each_message(&file.message_type, &[4], "", &mut |path, name, message| {
            if message.options.as_ref().is_some_and(|o| o.map_entry()) {
                return;
            }
            page.push_str(&format!("\n### `{name}`\n\n{}\n", comments.at(path)));
            if !message.field.is_empty() {
                page.push_str("\n| field | type | meaning |\n|---|---|---|\n");
            }
            for (f, field) in message.field.iter().enumerate() {
                let oneof = field
                    .oneof_index
                    .filter(|_| !field.proto3_optional())
                    .and_then(|index| message.oneof_decl.get(index as usize))
                    .map(|oneof| format!(" (one of `{}`)", oneof.name()))
                    .unwrap_or_default();
                page.push_str(&format!(
                    "| `{}` | {}{oneof} | {} |\n",
                    field.name(),
                    field_type(field, &maps),
                    cell(comments.at(&[path, &[2, f as i32]].concat())),
                ));
            }
            for (e, inner) in message.enum_type.iter().enumerate() {
                render_enum(
                    &mut page,
                    &comments,
                    &[path, &[4, e as i32]].concat(),
                    &format!("{name}.{}", inner.name()),
                    inner,
                );
            }
        });
        for (e, inner) in file.enum_type.iter().enumerate() {
            render_enum(&mut page, &comments, &[5, e as i32], inner.name(), inner);
        }
    }
    page
}

fn render_enum(
    page: &mut String,
    comments: &Comments,
    path: &[i32],
    name: &str,
    inner: &prost_types::EnumDescriptorProto,
) {
    page.push_str(&format!("\n### `{name}`\n\n{}\n\n", comments.at(path)));
    page.push_str("| value | number | meaning |\n|---|---:|---|\n");
    for (v, value) in inner.value.iter().enumerate() {
        page.push_str(&format!(
            "| `{}` | {} | {} |\n",
            value.name(),
            value.number(),
            cell(comments.at(&[path, &[2, v as i32]].concat())),
        ));
    }
}
