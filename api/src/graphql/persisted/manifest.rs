//! Trusted documents: the operations an app was built with, as the persisted query list that
//! `@apollo/generate-persisted-query-manifest` writes:
//!
//! ```json
//! { "format": "apollo-persisted-query-manifest", "version": 1,
//!   "operations": [{ "id": "<sha256 of body>", "name": "Me", "type": "query", "body": "query Me { … }" }] }
//! ```
//!
//! Every entry is checked when the server starts, so a manifest that does not match the
//! server's rules stops the start instead of refusing the app's operations one by one later.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use async_graphql::parser::types::OperationType;
use serde::Deserialize;

use super::DocumentId;
use crate::graphql::cost::{self, Budget, CostLimits};
use crate::graphql::measured::MeasuredDocuments;

const FORMAT: &str = "apollo-persisted-query-manifest";
/// Larger than any list of an app's operations; a file this large is not a manifest.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// One listed operation.
#[derive(Debug)]
pub struct ListedOperation {
    pub name: String,
    pub body: Arc<str>,
}

/// The listed operations by id. Empty when no manifest is configured.
#[derive(Debug, Default)]
pub struct Manifest {
    operations: HashMap<DocumentId, ListedOperation>,
}

#[derive(Deserialize)]
struct File {
    format: String,
    version: u64,
    operations: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    body: String,
}

impl Manifest {
    /// Reads and checks the manifest at `path`. Blocking file I/O: call it before serving.
    pub fn load(path: &Path, limits: &CostLimits) -> anyhow::Result<Self> {
        let context = || format!("PHOTON_PERSISTED_DOCUMENTS {}", path.display());
        let size = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read the file", context()))?
            .len();
        if size > MAX_MANIFEST_BYTES {
            bail!("{}: larger than {MAX_MANIFEST_BYTES} bytes", context());
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the file", context()))?;
        Self::parse(&text, limits).with_context(context)
    }

    /// Checks a manifest's text: its format and version, and for every operation that its id
    /// is the SHA-256 of its body, that the body parses, defines an operation of the stated
    /// type and name, and passes the cost limits (a listed operation is measured on every
    /// request like any other, so one over the limits could never run).
    pub fn parse(text: &str, limits: &CostLimits) -> anyhow::Result<Self> {
        let file: File = serde_json::from_str(text).map_err(|err| {
            anyhow::anyhow!(
                "not a persisted query manifest ({err}); expected {{\"format\": \"{FORMAT}\", \"version\": 1, \"operations\": [{{\"id\", \"name\", \"type\", \"body\"}}]}}"
            )
        })?;
        if file.format != FORMAT {
            bail!("format is {:?}, expected {FORMAT:?}", file.format);
        }
        if file.version != 1 {
            bail!("version {} is not supported, expected 1", file.version);
        }
        let mut operations = HashMap::with_capacity(file.operations.len());
        for (index, entry) in file.operations.into_iter().enumerate() {
            let (id, operation) = check(&entry, limits)
                .with_context(|| format!("operation #{index} ({:?})", entry.name))?;
            operations.insert(id, operation);
        }
        Ok(Self { operations })
    }

    pub fn get(&self, id: &DocumentId) -> Option<&ListedOperation> {
        self.operations.get(id)
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

fn check(entry: &Entry, limits: &CostLimits) -> anyhow::Result<(DocumentId, ListedOperation)> {
    let Some(id) = DocumentId::parse_hex(&entry.id) else {
        bail!("id {:?} is not a SHA-256 in hex", entry.id);
    };
    let actual = DocumentId::of(&entry.body);
    if id != actual {
        bail!("id {} is not the SHA-256 of its body ({actual})", entry.id);
    }
    let kind = match entry.kind.as_str() {
        "query" => OperationType::Query,
        "mutation" => OperationType::Mutation,
        "subscription" => OperationType::Subscription,
        other => bail!("type {other:?} is not query, mutation or subscription"),
    };
    let document = async_graphql::parser::parse_query(&entry.body)
        .map_err(|err| anyhow::anyhow!("the body does not parse: {err}"))?;
    let named = document.operations.iter().any(|(name, operation)| {
        operation.node.ty == kind && name.is_some_and(|name| name.as_str() == entry.name)
    });
    if !named {
        bail!("the body defines no {} named {:?}", entry.kind, entry.name);
    }
    let mut request = async_graphql::Request::new(entry.body.as_str());
    // Checked once at start-up, with nothing to remember it in.
    let once = MeasuredDocuments::default();
    if let Err(refusal) = cost::admit(&mut request, None, limits, &mut Budget::default(), &once) {
        let error = refusal.to_server_error();
        bail!("over the cost limits: {}", error.message);
    }
    Ok((
        id,
        ListedOperation {
            name: entry.name.clone(),
            body: Arc::from(entry.body.as_str()),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CostLimits {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            cost: crate::graphql::cost::CostSettings,
        }
        CostLimits::from(&<Cli as clap::Parser>::parse_from(["photon"]).cost)
    }

    fn manifest(operations: serde_json::Value) -> String {
        serde_json::json!({ "format": FORMAT, "version": 1, "operations": operations }).to_string()
    }

    fn entry(name: &str, kind: &str, body: &str) -> serde_json::Value {
        serde_json::json!({
            "id": DocumentId::of(body).to_string(), "name": name, "type": kind, "body": body,
        })
    }

    fn error_of(text: &str) -> String {
        format!("{:#}", Manifest::parse(text, &limits()).unwrap_err())
    }

    #[test]
    fn a_good_manifest_lists_its_operations_by_id() {
        let body = "query Me { me { id } }";
        let text = manifest(serde_json::json!([
            entry("Me", "query", body),
            entry("Out", "mutation", "mutation Out { logout }"),
        ]));
        let manifest = Manifest::parse(&text, &limits()).unwrap();
        assert_eq!(manifest.len(), 2);
        let listed = manifest.get(&DocumentId::of(body)).unwrap();
        assert_eq!((listed.name.as_str(), &*listed.body), ("Me", body));
    }

    #[test]
    fn every_kind_of_bad_entry_is_named_in_the_error() {
        let mut wrong_id = entry("Me", "query", "query Me { me { id } }");
        wrong_id["id"] = DocumentId::of("something else").to_string().into();
        let error = error_of(&manifest(serde_json::json!([wrong_id])));
        assert!(
            error.contains("operation #0 (\"Me\")") && error.contains("not the SHA-256"),
            "{error}"
        );

        let mut not_hex = entry("Me", "query", "query Me { me { id } }");
        not_hex["id"] = "abc".into();
        assert!(error_of(&manifest(serde_json::json!([not_hex]))).contains("not a SHA-256"));

        let error = error_of(&manifest(serde_json::json!([entry(
            "Me",
            "query",
            "query Me { me { id }"
        )])));
        assert!(error.contains("does not parse"), "{error}");

        let error = error_of(&manifest(serde_json::json!([entry(
            "Me",
            "mutation",
            "query Me { me { id } }"
        )])));
        assert!(error.contains("no mutation named \"Me\""), "{error}");

        let error = error_of(&manifest(serde_json::json!([entry(
            "Me",
            "fragment",
            "query Me { me { id } }"
        )])));
        assert!(error.contains("type \"fragment\""), "{error}");

        let aliases: String = (0..101).map(|i| format!("a{i}: __typename ")).collect();
        let body = format!("query Big {{ {aliases} }}");
        let error = error_of(&manifest(serde_json::json!([entry("Big", "query", &body)])));
        assert!(error.contains("over the cost limits"), "{error}");
    }

    #[test]
    fn the_format_and_version_are_checked() {
        let error = error_of(r#"{"format":"something","version":1,"operations":[]}"#);
        assert!(error.contains("format"), "{error}");
        let error = error_of(&format!(
            r#"{{"format":"{FORMAT}","version":2,"operations":[]}}"#
        ));
        assert!(error.contains("version 2"), "{error}");
        let error = error_of("[1, 2]");
        assert!(error.contains("not a persisted query manifest"), "{error}");
    }
}
