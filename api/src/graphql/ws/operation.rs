//! What a `subscribe` asks for, read from its parsed document before it runs: its name for the
//! logs and, for a subscription, the root field it follows for the metrics.

use std::sync::OnceLock;

use async_graphql::Request;
use async_graphql::parser::types::{Selection, TypeKind, TypeSystemDefinition};

use crate::graphql::Schemas;

/// Longest operation name written to a log line (names come from the client).
const MAX_NAME_LEN: usize = 64;

/// The label of a subscription whose root field the schema's `Subscription` type lacks.
pub const OTHER_FIELD: &str = "other";

/// The name of the operation `request` selects (its `operationName`, or the document's one
/// operation's name), cut to [`MAX_NAME_LEN`]; `None` for an anonymous operation or a
/// document that did not parse.
pub fn name(request: &mut Request) -> Option<String> {
    let wanted = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let name = match wanted {
        Some(wanted) => document
            .operations
            .iter()
            .find_map(|(name, _)| name.filter(|name| name.as_str() == wanted))?
            .to_string(),
        None => document.operations.iter().next()?.0?.to_string(),
    };
    Some(name.chars().take(MAX_NAME_LEN).collect())
}

/// The metrics label of a subscription: the name of the first root field of the operation
/// `request` selects, if `Subscription` in `schema` has that field, else [`OTHER_FIELD`]. A
/// label never carries text a client chose that is not one of the schema's own names.
pub fn subscription_field(request: &mut Request, schema: &Schemas) -> String {
    root_field(request)
        .filter(|field| subscription_fields(schema).contains(field))
        .unwrap_or_else(|| OTHER_FIELD.to_owned())
}

fn root_field(request: &mut Request) -> Option<String> {
    let wanted = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let (_, operation) = document
        .operations
        .iter()
        .find(|(name, _)| match (&wanted, name) {
            (Some(wanted), Some(name)) => wanted == name.as_str(),
            (None, _) => true,
            (Some(_), None) => false,
        })?;
    match &operation.node.selection_set.node.items.first()?.node {
        Selection::Field(field) => Some(field.node.name.node.to_string()),
        // A fragment at the root: the field it selects is not worth expanding for a label.
        Selection::FragmentSpread(_) | Selection::InlineFragment(_) => None,
    }
}

/// The fields of the schema's subscription root, read once from its SDL (every schema this
/// process builds has the same one).
fn subscription_fields(schema: &Schemas) -> &'static [String] {
    static FIELDS: OnceLock<Vec<String>> = OnceLock::new();
    FIELDS.get_or_init(|| fields_of_subscription_root(&schema.sdl()))
}

fn fields_of_subscription_root(sdl: &str) -> Vec<String> {
    let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
        tracing::error!("the schema's own SDL does not parse; subscriptions are labelled other");
        return Vec::new();
    };
    let root = document
        .definitions
        .iter()
        .find_map(|definition| match definition {
            TypeSystemDefinition::Schema(schema) => schema.node.subscription.as_ref(),
            _ => None,
        })
        .map_or_else(|| "Subscription".to_owned(), |name| name.node.to_string());
    document
        .definitions
        .iter()
        .find_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) if ty.node.name.node.as_str() == root => {
                match &ty.node.kind {
                    TypeKind::Object(object) => Some(
                        object
                            .fields
                            .iter()
                            .map(|field| field.node.name.node.to_string())
                            .collect(),
                    ),
                    _ => None,
                }
            }
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::{QueryLimits, Schemas};

    fn schema() -> Schemas {
        let unlimited = QueryLimits {
            depth: usize::MAX,
            complexity: usize::MAX,
            directives: usize::MAX,
        };
        Schemas::new(None, unlimited)
    }

    fn field(query: &str, operation: Option<&str>) -> String {
        let mut request = Request::new(query);
        if let Some(operation) = operation {
            request = request.operation_name(operation);
        }
        subscription_field(&mut request, &schema())
    }

    #[test]
    fn the_schema_subscription_root_lists_its_fields() {
        let fields = subscription_fields(&schema());
        assert!(fields.contains(&"photoAdded".to_owned()), "{fields:?}");
        assert!(fields.contains(&"sessionEvents".to_owned()), "{fields:?}");
    }

    #[test]
    fn a_subscription_is_labelled_by_its_schema_field_and_nothing_else() {
        let photo = r#"subscription { photoAdded(sessionId: "x") { cursor } }"#;
        assert_eq!(field(photo, None), "photoAdded");
        let aliased = r#"subscription { mine: sessionEvents(sessionId: "x") { cursor } }"#;
        assert_eq!(field(aliased, None), "sessionEvents");
        // A field the schema lacks (it will fail validation) is not a label.
        assert_eq!(
            field("subscription { drop_tables_here }", None),
            OTHER_FIELD
        );
        assert_eq!(
            field(
                "subscription { ...F } fragment F on Subscription { photoAdded }",
                None
            ),
            OTHER_FIELD
        );
        assert_eq!(field("subscription {", None), OTHER_FIELD);
        // The operation named picks among several.
        let two = r#"subscription A { sessionEvents(sessionId: "x") { cursor } }
            subscription B { photoAdded(sessionId: "x") { cursor } }"#;
        assert_eq!(field(two, Some("B")), "photoAdded");
        assert_eq!(field(two, Some("C")), OTHER_FIELD);
    }

    #[test]
    fn operation_names_come_from_the_request_or_the_document() {
        let name_of = |query: &str, operation: Option<&str>| {
            let mut request = Request::new(query);
            if let Some(operation) = operation {
                request = request.operation_name(operation);
            }
            name(&mut request)
        };
        assert_eq!(
            name_of("query Me { me { id } }", None).as_deref(),
            Some("Me")
        );
        assert_eq!(
            name_of("query A { a } query B { b }", Some("B")).as_deref(),
            Some("B")
        );
        assert_eq!(name_of("query A { a }", Some("Z")), None);
        assert_eq!(name_of("{ me { id } }", None), None);
        assert_eq!(name_of("query {", None), None);
        let long = format!("query {} {{ a }}", "N".repeat(500));
        assert_eq!(name_of(&long, None).map(|n| n.len()), Some(MAX_NAME_LEN));
    }
}
