//! Every object of every result in the order of its selection set, as the spec's
//! `CollectFields` gives it (aliases, fragments and inline fragments included).
//!
//! async-graphql 7 resolves an object's fields concurrently and inserts each into the result
//! when it completes, so a field that waits on the database lands after one that does not:
//! `{ me { name } authProviders { name } }` could come back with `authProviders` first (fixed
//! upstream in async-graphql 8). `crate::graphql::execution` hands every result here with the
//! document its request parsed, before any transport serializes it: HTTP responses,
//! WebSocket results and every subscription event alike.
//!
//! A fragment's type condition is decided by the object's `__typename` when the document
//! selects it (Apollo Client always does), else by the field's declared type when that is an
//! object type; for an abstract type without `__typename` every fragment counts, which orders
//! the keys that are present the same way unless two fragments list the same keys in opposite
//! orders.

use std::collections::HashSet;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{Name, Value};

/// The operation a request runs: the one named, or the only one.
fn operation<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    let mut operations = document.operations.iter();
    let found = match name {
        Some(wanted) => operations.find(|(n, _)| n.is_some_and(|n| n.as_str() == wanted)),
        None => {
            let first = operations.next();
            // Several operations without a name is an error async-graphql reports itself.
            if operations.next().is_some() {
                return None;
            }
            first
        }
    };
    found.map(|(_, operation)| &operation.node)
}

/// Puts the objects of `data`, the result of `document`'s operation, in selection order.
pub fn order_data(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    registry: &Registry,
    data: &mut Value,
) {
    let Some(operation) = operation(document, operation_name) else {
        return;
    };
    let root = match operation.ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    };
    let walk = Walk { document, registry };
    walk.value(data, &[&operation.selection_set.node], root);
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    registry: &'a Registry,
}

/// The fields of one response key: the field's name and every selection set asked of it
/// (merged, in order, as `CollectFields` merges them).
struct Group<'a> {
    field: &'a str,
    sets: Vec<&'a SelectionSet>,
}

impl<'a> Walk<'a> {
    fn value(&self, value: &mut Value, sets: &[&'a SelectionSet], declared: Option<&str>) {
        match value {
            Value::List(items) => {
                for item in items {
                    self.value(item, sets, declared);
                }
            }
            Value::Object(object) => self.object(object, sets, declared),
            _ => {}
        }
    }

    fn object(
        &self,
        object: &mut IndexMap<Name, Value>,
        sets: &[&'a SelectionSet],
        declared: Option<&str>,
    ) {
        let runtime = self.runtime_type(object, sets, declared);
        let mut groups: IndexMap<&'a str, Group<'a>> = IndexMap::new();
        let mut visited = HashSet::new();
        for set in sets {
            self.collect(set, runtime.as_deref(), &mut groups, &mut visited);
        }
        let mut unordered = std::mem::take(object);
        let parent = runtime.as_deref().or(declared);
        for (key, group) in &groups {
            let Some((key, mut value)) = unordered.swap_remove_entry(*key) else {
                continue;
            };
            if !group.sets.is_empty() {
                let declared = self.field_type(parent, group.field);
                self.value(&mut value, &group.sets, declared);
            }
            object.insert(key, value);
        }
        // Anything the document does not explain stays, after the rest.
        object.extend(unordered);
    }

    /// `CollectFields`: response keys in order of first appearance, fragments expanded in
    /// place where their type condition holds, each fragment once.
    fn collect(
        &self,
        set: &'a SelectionSet,
        runtime: Option<&str>,
        groups: &mut IndexMap<&'a str, Group<'a>>,
        visited: &mut HashSet<&'a str>,
    ) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let group = groups
                        .entry(field.response_key().node.as_str())
                        .or_insert_with(|| Group {
                            field: field.name.node.as_str(),
                            sets: Vec::new(),
                        });
                    if !field.selection_set.node.items.is_empty() {
                        group.sets.push(&field.selection_set.node);
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if !visited.insert(name.as_str()) {
                        continue;
                    }
                    let Some(fragment) = self.document.fragments.get(name) else {
                        continue;
                    };
                    let condition = fragment.node.type_condition.node.on.node.as_str();
                    if self.applies(condition, runtime) {
                        self.collect(&fragment.node.selection_set.node, runtime, groups, visited);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    let applies = inline
                        .type_condition
                        .as_ref()
                        .is_none_or(|c| self.applies(c.node.on.node.as_str(), runtime));
                    if applies {
                        self.collect(&inline.selection_set.node, runtime, groups, visited);
                    }
                }
            }
        }
    }

    fn applies(&self, condition: &str, runtime: Option<&str>) -> bool {
        match runtime {
            None => true,
            Some(runtime) => {
                condition == runtime
                    || self
                        .registry
                        .types
                        .get(condition)
                        .is_some_and(|ty| ty.is_possible_type(runtime))
            }
        }
    }

    /// The object's type: its `__typename` if selected, else the declared type when that is
    /// an object type (an interface or union says nothing about which).
    fn runtime_type(
        &self,
        object: &IndexMap<Name, Value>,
        sets: &[&'a SelectionSet],
        declared: Option<&str>,
    ) -> Option<String> {
        let from_typename = sets
            .iter()
            .find_map(|set| self.typename_key(set, &mut HashSet::new()))
            .and_then(|key| match object.get(key) {
                Some(Value::String(name)) => Some(name.clone()),
                _ => None,
            });
        from_typename.or_else(|| {
            let declared = declared?;
            match self.registry.types.get(declared) {
                Some(MetaType::Object { .. }) => Some(declared.to_owned()),
                _ => None,
            }
        })
    }

    /// The response key of a `__typename` selected on this object, through any fragment.
    fn typename_key(
        &self,
        set: &'a SelectionSet,
        visited: &mut HashSet<&'a str>,
    ) -> Option<&'a str> {
        set.items
            .iter()
            .find_map(|selection| match &selection.node {
                Selection::Field(field) if field.node.name.node.as_str() == "__typename" => {
                    Some(field.node.response_key().node.as_str())
                }
                Selection::Field(_) => None,
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if !visited.insert(name.as_str()) {
                        return None;
                    }
                    let fragment = self.document.fragments.get(name)?;
                    self.typename_key(&fragment.node.selection_set.node, visited)
                }
                Selection::InlineFragment(inline) => {
                    self.typename_key(&inline.node.selection_set.node, visited)
                }
            })
    }

    /// The named type of `field` on `parent`.
    fn field_type(&self, parent: Option<&str>, field: &str) -> Option<&'a str> {
        match field {
            "__schema" => return Some("__Schema"),
            "__type" => return Some("__Type"),
            _ => {}
        }
        let meta = self.registry.types.get(parent?)?.field_by_name(field)?;
        Some(MetaTypeName::concrete_typename(&meta.ty))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject, Union};

    use super::order_data;
    use crate::graphql::execution::CatchEnv;

    #[derive(SimpleObject)]
    struct Cat {
        name: String,
        lives: i32,
    }

    #[derive(SimpleObject)]
    struct Dog {
        name: String,
        good: bool,
    }

    #[derive(Union)]
    enum Pet {
        Cat(Cat),
        Dog(Dog),
    }

    struct Query;

    #[Object]
    impl Query {
        /// Resolves after `fast`: async-graphql 7 would put it last.
        async fn slow(&self) -> i32 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            1
        }
        async fn fast(&self) -> i32 {
            2
        }
        async fn pets(&self) -> Vec<Pet> {
            vec![
                Pet::Cat(Cat {
                    name: "Tom".into(),
                    lives: 9,
                }),
                Pet::Dog(Dog {
                    name: "Rex".into(),
                    good: true,
                }),
            ]
        }
    }

    async fn run(ordered: bool, query: &str) -> String {
        let env = Arc::new(OnceLock::new());
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(CatchEnv::new(env.clone()))
            .finish();
        let mut response = schema.execute(query).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        if ordered {
            let document = async_graphql::parser::parse_query(query).unwrap();
            let registry = &env.get().unwrap().registry;
            order_data(&document, None, registry, &mut response.data);
        }
        serde_json::to_string(&response.data).unwrap()
    }

    #[tokio::test]
    async fn fields_come_back_in_the_order_they_were_asked_for() {
        let query = "{ slow fast other: fast }";
        let in_order = r#"{"slow":1,"fast":2,"other":2}"#;
        // The upstream behaviour this module exists for: should it ever be fixed, this fails
        // and the module can go.
        assert_ne!(run(false, query).await, in_order);
        assert_eq!(run(true, query).await, in_order);
    }

    #[tokio::test]
    async fn fragments_are_expanded_in_place_by_their_type_condition() {
        let query = "query { pets { ...on Dog { good } __typename ...Named ...on Cat { lives name } } slow } fragment Named on Pet { ...on Cat { name } ...on Dog { name } }";
        assert_eq!(
            run(true, query).await,
            r#"{"pets":[{"__typename":"Cat","name":"Tom","lives":9},{"good":true,"__typename":"Dog","name":"Rex"}],"slow":1}"#
        );
    }
}
