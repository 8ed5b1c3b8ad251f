//! What a GraphQL document may cost, measured before async-graphql sees it.
//!
//! async-graphql's recursion and directive checks, its validation rules and its execution all
//! walk fragment spreads without remembering what a fragment already cost, and none of that
//! synchronous work can be interrupted by a time limit. A 1 KB document whose fragments each
//! spread the previous one twice therefore expands to 2^30 fields and pins a core for minutes.
//! So every document is measured here first, on the transport's task, in time linear in its
//! size:
//!
//! 1. a scan of the raw text counts its tokens and its deepest nesting, before any parsing
//!    (the parser recurses, so nesting must be bounded before it runs);
//! 2. the parsed document's fields are counted *after* expanding fragments, with each
//!    fragment's cost computed once (memoised), together with its aliases and root fields, and
//!    the directives on any one selection are counted;
//! 3. the parsed document is handed to async-graphql with the request, so it is parsed once.
//!
//! A batch shares one budget of tokens, fields and aliases. Introspection is counted like any
//! other selection. A refusal is a `GRAPHQL_VALIDATION_FAILED` error whose `extensions.limit`
//! names the limit, and nothing runs.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Name, Positioned, Request, ServerError};

use super::measured::{Measured, MeasuredDocuments};
use super::persisted::DocumentId;
use crate::error::ErrorCode;

/// The limits, as the operator set them (see `photon --help` and the README's "Limits").
#[derive(Debug, Clone, clap::Args)]
pub struct CostSettings {
    /// Deepest query accepted (introspection included).
    #[arg(long, env = "PHOTON_MAX_QUERY_DEPTH", default_value_t = 16,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub max_query_depth: usize,

    /// Highest query complexity accepted: each field counts one, list fields count their page
    /// size times their selection.
    #[arg(long, env = "PHOTON_MAX_QUERY_COMPLEXITY", default_value_t = 5000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_query_complexity: usize,

    /// Longest GraphQL document accepted, in bytes.
    #[arg(long, env = "PHOTON_MAX_DOCUMENT_BYTES", default_value_t = 64 * 1024,
        value_parser = clap::value_parser!(u64).range(1024..=256 * 1024))]
    pub max_document_bytes: u64,

    /// Most lexical tokens in a request's documents (a batch shares them).
    #[arg(long, env = "PHOTON_MAX_DOCUMENT_TOKENS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=100_000))]
    pub max_document_tokens: u64,

    /// Deepest nesting of braces, brackets and parentheses in a document.
    #[arg(long, env = "PHOTON_MAX_DOCUMENT_NESTING", default_value_t = 48,
        value_parser = clap::value_parser!(u64).range(8..=256))]
    pub max_document_nesting: u64,

    /// Most fields in a request once fragments are expanded (a batch shares them).
    /// GraphiQL's introspection query needs about 200.
    #[arg(long, env = "PHOTON_MAX_FIELDS", default_value_t = 3_000,
        value_parser = clap::value_parser!(u64).range(100..=100_000))]
    pub max_fields: u64,

    /// Most aliased fields in a request once fragments are expanded (a batch shares them).
    #[arg(long, env = "PHOTON_MAX_ALIASES", default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub max_aliases: u64,

    /// Most root fields in one document, fragments expanded.
    #[arg(long, env = "PHOTON_MAX_ROOT_FIELDS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub max_root_fields: u64,

    /// Most fragment definitions in one document. Capped at 1,000: the measure recurses once
    /// per spread in a chain of fragments, and a deeper chain could exhaust a worker's stack.
    #[arg(long, env = "PHOTON_MAX_FRAGMENTS", default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub max_fragments: u64,

    /// Most directives on one field, fragment spread or inline fragment.
    #[arg(long, env = "PHOTON_MAX_DIRECTIVES", default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_directives: u64,

    /// Operations of one batched request executed at once.
    #[arg(long, env = "PHOTON_BATCH_CONCURRENCY", default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..=20))]
    pub batch_concurrency: u64,
}

/// The limits the server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostLimits {
    pub document_bytes: usize,
    pub tokens: u64,
    pub nesting: u64,
    pub fields: u64,
    pub aliases: u64,
    pub root_fields: u64,
    pub fragments: u64,
    pub directives: u64,
    pub batch_concurrency: usize,
}

impl From<&CostSettings> for CostLimits {
    fn from(s: &CostSettings) -> Self {
        Self {
            document_bytes: usize::try_from(s.max_document_bytes).unwrap_or(usize::MAX),
            tokens: s.max_document_tokens,
            nesting: s.max_document_nesting,
            fields: s.max_fields,
            aliases: s.max_aliases,
            root_fields: s.max_root_fields,
            fragments: s.max_fragments,
            directives: s.max_directives,
            batch_concurrency: usize::try_from(s.batch_concurrency).unwrap_or(1),
        }
    }
}

/// Which limit a document went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    DocumentBytes,
    Tokens,
    Nesting,
    Fields,
    Aliases,
    RootFields,
    Fragments,
    Directives,
    FragmentCycle,
}

impl Limit {
    /// The name sent as `extensions.limit`.
    pub fn name(self) -> &'static str {
        match self {
            Self::DocumentBytes => "documentBytes",
            Self::Tokens => "tokens",
            Self::Nesting => "nesting",
            Self::Fields => "fields",
            Self::Aliases => "aliases",
            Self::RootFields => "rootFields",
            Self::Fragments => "fragments",
            Self::Directives => "directives",
            Self::FragmentCycle => "fragmentCycle",
        }
    }
}

/// A refused document: which limit, and what that limit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub limit: Limit,
    pub max: u64,
}

impl Refusal {
    fn new(limit: Limit, max: u64) -> Self {
        Self { limit, max }
    }

    fn message(self) -> String {
        match self.limit {
            Limit::DocumentBytes => format!("the document is longer than {} bytes", self.max),
            Limit::Tokens => format!("the request has more than {} tokens", self.max),
            Limit::Nesting => format!("the document nests deeper than {} levels", self.max),
            Limit::Fields => format!(
                "the request selects more than {} fields once fragments are expanded",
                self.max
            ),
            Limit::Aliases => format!("the request has more than {} aliases", self.max),
            Limit::RootFields => format!("the operation has more than {} root fields", self.max),
            Limit::Fragments => format!("the document defines more than {} fragments", self.max),
            Limit::Directives => {
                format!("a selection carries more than {} directives", self.max)
            }
            Limit::FragmentCycle => "fragments spread each other in a cycle".to_owned(),
        }
    }

    /// The error a client receives.
    pub fn to_server_error(self) -> ServerError {
        let error = async_graphql::Error::new(self.message()).extend_with(|_, ext| {
            ext.set("code", ErrorCode::GraphqlValidationFailed);
            ext.set("limit", self.limit.name());
            ext.set("max", self.max);
        });
        error.into_server_error(async_graphql::Pos::default())
    }
}

/// What one request (a single operation or a whole batch) has used of its shared limits.
#[derive(Debug, Default)]
pub struct Budget {
    tokens: u64,
    fields: u64,
    aliases: u64,
}

/// Measures `request`'s document against `limits`, charging `budget`. On success the parsed
/// document is attached to the request, so async-graphql does not parse it again, and its
/// entry is returned (`crate::graphql::execution` orders the result by it). A document that
/// does not parse (`Ok(None)`) is left to be reported with its own error and position
/// (parsing it twice is cheap: its tokens and nesting are bounded by then). A document seen
/// before comes from `measured`, parsed and counted, and is charged the same; `known` is the
/// document's id when the caller has it already (a persisted query's hash, checked).
pub fn admit(
    request: &mut Request,
    known: Option<DocumentId>,
    limits: &CostLimits,
    budget: &mut Budget,
    measured: &MeasuredDocuments,
) -> Result<Option<Arc<Measured>>, Refusal> {
    if request.query.len() > limits.document_bytes {
        return Err(Refusal::new(
            Limit::DocumentBytes,
            limits.document_bytes as u64,
        ));
    }
    let id = known.unwrap_or_else(|| DocumentId::of(&request.query));
    let entry = match measured.get(&id) {
        Some(entry) => entry,
        None => {
            let tokens = scan(
                &request.query,
                limits.tokens.saturating_sub(budget.tokens),
                limits.nesting,
            )
            .map_err(|limit| match limit {
                Limit::Nesting => Refusal::new(Limit::Nesting, limits.nesting),
                _ => Refusal::new(Limit::Tokens, limits.tokens),
            })?;
            let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
                budget.tokens += tokens;
                return Ok(None);
            };
            let cost = measure(&document, limits)?;
            let entry = Arc::new(Measured {
                document,
                tokens,
                cost,
                text_bytes: request.query.len(),
            });
            measured.insert(id, entry.clone());
            entry
        }
    };
    budget.tokens = budget.tokens.saturating_add(entry.tokens);
    if budget.tokens > limits.tokens {
        return Err(Refusal::new(Limit::Tokens, limits.tokens));
    }
    let cost = entry.cost;
    budget.fields = budget.fields.saturating_add(cost.fields);
    if budget.fields > limits.fields {
        return Err(Refusal::new(Limit::Fields, limits.fields));
    }
    budget.aliases = budget.aliases.saturating_add(cost.aliases);
    if budget.aliases > limits.aliases {
        return Err(Refusal::new(Limit::Aliases, limits.aliases));
    }
    if cost.top > limits.root_fields {
        return Err(Refusal::new(Limit::RootFields, limits.root_fields));
    }
    request.set_parsed_query(entry.document.clone());
    Ok(Some(entry))
}

/// Counts the tokens of a GraphQL document (the spec's lexical grammar, loosely: anything the
/// parser would reject still counts, one byte a token) while watching its bracket nesting.
/// Gives up as soon as either passes its limit, so hostile input costs no more than that.
fn scan(source: &str, max_tokens: u64, max_nesting: u64) -> Result<u64, Limit> {
    let bytes = source.as_bytes();
    let (mut i, mut tokens, mut depth) = (0usize, 0u64, 0u64);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            // Ignored tokens: white space, line ends, commas, the byte-order mark's bytes.
            b' ' | b'\t' | b'\n' | b'\r' | b',' | 0xEF | 0xBB | 0xBF => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            b'{' | b'(' | b'[' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(Limit::Nesting);
                }
                i += 1;
            }
            b'}' | b')' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
        tokens += 1;
        if tokens > max_tokens {
            return Err(Limit::Tokens);
        }
    }
    Ok(tokens)
}

/// The expanded cost of a selection set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Fields, at every level.
    fields: u64,
    /// Fields with an alias, at every level.
    aliases: u64,
    /// Fields at the top level of the set (through fragments).
    top: u64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.fields = self.fields.saturating_add(other.fields);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.top = self.top.saturating_add(other.top);
    }
}

/// The cost of every operation in `document` (all of them are validated, whichever runs),
/// with each fragment's cost computed once; `top` is the most root fields of any operation.
fn measure(document: &ExecutableDocument, limits: &CostLimits) -> Result<Cost, Refusal> {
    if document.fragments.len() as u64 > limits.fragments {
        return Err(Refusal::new(Limit::Fragments, limits.fragments));
    }
    let mut walk = Walk {
        document,
        limits,
        fragments: HashMap::new(),
    };
    let mut total = Cost::default();
    // Fragments that no operation uses are validated too, so they are measured too.
    for name in document.fragments.keys() {
        let cost = walk.fragment(name)?;
        if cost.fields > limits.fields {
            return Err(Refusal::new(Limit::Fields, limits.fields));
        }
    }
    let mut top = 0;
    for (_, operation) in document.operations.iter() {
        let cost = walk.selection_set(&operation.node.selection_set)?;
        top = top.max(cost.top);
        total.add(cost);
    }
    total.top = top;
    Ok(total)
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    limits: &'a CostLimits,
    /// `None` while a fragment is being measured: meeting it again is a cycle.
    fragments: HashMap<&'a Name, Option<Cost>>,
}

impl<'a> Walk<'a> {
    fn fragment(&mut self, name: &'a Name) -> Result<Cost, Refusal> {
        match self.fragments.get(name) {
            Some(Some(cost)) => return Ok(*cost),
            Some(None) => return Err(Refusal::new(Limit::FragmentCycle, 0)),
            None => {}
        }
        // An unknown fragment costs nothing here; validation reports it.
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(Cost::default());
        };
        self.fragments.insert(name, None);
        let cost = self.selection_set(&fragment.node.selection_set)?;
        self.fragments.insert(name, Some(cost));
        Ok(cost)
    }

    fn selection_set(&mut self, set: &'a Positioned<SelectionSet>) -> Result<Cost, Refusal> {
        let mut cost = Cost::default();
        for selection in &set.node.items {
            if selection.node.directives().len() as u64 > self.limits.directives {
                return Err(Refusal::new(Limit::Directives, self.limits.directives));
            }
            match &selection.node {
                Selection::Field(field) => {
                    let inner = self.selection_set(&field.node.selection_set)?;
                    cost.add(Cost {
                        fields: inner.fields.saturating_add(1),
                        aliases: inner
                            .aliases
                            .saturating_add(u64::from(field.node.alias.is_some())),
                        top: 1,
                    });
                }
                Selection::FragmentSpread(spread) => {
                    cost.add(self.fragment(&spread.node.fragment_name.node)?);
                }
                Selection::InlineFragment(inline) => {
                    cost.add(self.selection_set(&inline.node.selection_set)?);
                }
            }
            // Stop adding once over: the sum cannot come back down.
            if cost.fields > self.limits.fields {
                return Err(Refusal::new(Limit::Fields, self.limits.fields));
            }
        }
        Ok(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits with every default, as the binary would parse them.
    fn limits() -> CostLimits {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            cost: CostSettings,
        }
        CostLimits::from(&<Cli as clap::Parser>::parse_from(["photon"]).cost)
    }

    fn admit_one(query: &str, limits: &CostLimits) -> Result<(), Refusal> {
        admit(
            &mut Request::new(query),
            None,
            limits,
            &mut Budget::default(),
            &MeasuredDocuments::default(),
        )
        .map(|_| ())
    }

    /// `fragment F0 … F{n}`, each spreading the one before twice, and a query spreading F{n}.
    fn fragment_bomb(n: usize) -> String {
        let mut doc = "fragment F0 on Query { __typename }\n".to_owned();
        for i in 1..=n {
            doc.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i - 1,
                i - 1
            ));
        }
        doc.push_str(&format!("query {{ ...F{n} }}"));
        doc
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let l = limits();
        assert_eq!((l.fields, l.aliases, l.root_fields), (3_000, 100, 30));
        assert_eq!(
            (l.tokens, l.nesting, l.document_bytes),
            (10_000, 48, 65_536)
        );
        assert_eq!(
            (l.fragments, l.directives, l.batch_concurrency),
            (100, 5, 4)
        );
    }

    #[test]
    fn a_fragment_bomb_is_refused_for_its_expanded_fields() {
        let refusal = admit_one(&fragment_bomb(30), &limits()).unwrap_err();
        assert_eq!(refusal.limit, Limit::Fields);
        // Just under the limit, it is admitted: the count is exact, not an estimate.
        let mut l = limits();
        l.root_fields = u64::MAX;
        l.fields = 1 << 11;
        assert!(admit_one(&fragment_bomb(11), &l).is_ok());
        l.fields -= 1;
        assert_eq!(
            admit_one(&fragment_bomb(11), &l).unwrap_err().limit,
            Limit::Fields
        );
    }

    #[test]
    fn fragments_are_counted_once_each_time_they_are_spread() {
        let doc = "fragment U on User { id name } query { me { ...U ...U } a: me { ...U } }";
        let document = async_graphql::parser::parse_query(doc).unwrap();
        let cost = measure(&document, &limits()).unwrap();
        assert_eq!(cost.fields, 2 + 4 + 2);
        assert_eq!(cost.aliases, 1);
    }

    #[test]
    fn root_fields_count_through_fragments() {
        let mut l = limits();
        l.root_fields = 3;
        assert!(
            admit_one(
                "fragment R on Query { a: me { id } b: me { id } } { ...R me { id } }",
                &l
            )
            .is_ok()
        );
        let refusal = admit_one("fragment R on Query { a: me { id } b: me { id } } { ...R ... on Query { c: me { id } d: me { id } } }", &l).unwrap_err();
        assert_eq!(refusal.limit, Limit::RootFields);
    }

    #[test]
    fn aliases_directives_fragments_and_cycles_have_limits() {
        let aliases: String = (0..101).map(|i| format!("a{i}: __typename ")).collect();
        assert_eq!(
            admit_one(&format!("{{ {aliases} }}"), &limits())
                .unwrap_err()
                .limit,
            Limit::Aliases
        );
        let nested = format!("{{ __schema {{ {aliases} }} }}");
        assert_eq!(
            admit_one(&nested, &limits()).unwrap_err().limit,
            Limit::Aliases
        );
        let directives = "@skip(if: false) ".repeat(6);
        assert_eq!(
            admit_one(&format!("{{ __typename {directives} }}"), &limits())
                .unwrap_err()
                .limit,
            Limit::Directives
        );
        let fragments: String = (0..101)
            .map(|i| format!("fragment F{i} on Query {{ __typename }} "))
            .collect();
        assert_eq!(
            admit_one(&format!("{{ __typename }} {fragments}"), &limits())
                .unwrap_err()
                .limit,
            Limit::Fragments
        );
        let cycle = "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }";
        assert_eq!(
            admit_one(cycle, &limits()).unwrap_err().limit,
            Limit::FragmentCycle
        );
    }

    #[test]
    fn tokens_nesting_and_size_are_bounded_before_parsing() {
        let deep = format!("{}{}", "{ a ".repeat(100), "}".repeat(100));
        assert_eq!(
            admit_one(&deep, &limits()).unwrap_err().limit,
            Limit::Nesting
        );
        let many = format!("{{ {} }}", "a ".repeat(10_001));
        assert_eq!(
            admit_one(&many, &limits()).unwrap_err().limit,
            Limit::Tokens
        );
        let long = format!("{{ __typename }} # {}", "x".repeat(70_000));
        assert_eq!(
            admit_one(&long, &limits()).unwrap_err().limit,
            Limit::DocumentBytes
        );
    }

    #[test]
    fn the_scan_counts_tokens_as_the_grammar_does() {
        let doc = "query Q($a: [Int!] = [1, -2.5e3]) { f(s: \"x, y # z\", b: \"\"\"a \\\"\"\" b\"\"\") @include(if: true) { ...on T { g } ...F } } # done";
        // query Q ( $ a : [ Int ! ] = [ 1 -2.5e3 ] ) { f ( s : "…" b : """…""" ) @ include
        // ( if : true ) { ... on T { g } ... F } }
        assert_eq!(scan(doc, 1_000, 3), Ok(44));
        assert_eq!(scan(doc, 1_000, 2), Err(Limit::Nesting));
        assert_eq!(scan("{ a }", 2, 10), Err(Limit::Tokens));
    }

    #[test]
    fn a_batch_shares_one_budget() {
        let l = CostLimits {
            aliases: 10,
            ..limits()
        };
        let mut budget = Budget::default();
        let measured = MeasuredDocuments::default();
        let six: String = (0..6).map(|i| format!("a{i}: __typename ")).collect();
        let query = format!("{{ {six} }}");
        assert!(admit(&mut Request::new(&query), None, &l, &mut budget, &measured).is_ok());
        // The second comes from the cache, and is charged all the same.
        let refusal =
            admit(&mut Request::new(&query), None, &l, &mut budget, &measured).unwrap_err();
        assert_eq!(refusal.limit, Limit::Aliases);
        assert_eq!(measured.len(), 1);
    }

    #[test]
    fn a_document_seen_before_is_attached_parsed_and_counted_against_the_batch() {
        let measured = MeasuredDocuments::default();
        let query = "query Screen($s: ID!) { session(id: $s) { title members { edges { node { name } } } } }";
        let mut first = Request::new(query);
        admit(
            &mut first,
            None,
            &limits(),
            &mut Budget::default(),
            &measured,
        )
        .unwrap();
        let mut second = Request::new(query);
        admit(
            &mut second,
            None,
            &limits(),
            &mut Budget::default(),
            &measured,
        )
        .unwrap();
        assert_eq!(measured.len(), 1);
        let printed = |request: &mut Request| format!("{:?}", request.parsed_query().unwrap());
        assert_eq!(printed(&mut first), printed(&mut second));

        // Its tokens still count against what a batch may send.
        let tokens = scan(query, u64::MAX, u64::MAX).unwrap();
        let l = CostLimits {
            tokens: tokens * 2 - 1,
            ..limits()
        };
        let mut budget = Budget::default();
        assert!(admit(&mut Request::new(query), None, &l, &mut budget, &measured).is_ok());
        let refusal =
            admit(&mut Request::new(query), None, &l, &mut budget, &measured).unwrap_err();
        assert_eq!(refusal.limit, Limit::Tokens);
    }

    #[test]
    fn an_unparsable_document_is_left_to_the_parser_and_not_kept() {
        let measured = MeasuredDocuments::default();
        let mut request = Request::new("{ unclosed");
        assert!(
            admit(
                &mut request,
                None,
                &limits(),
                &mut Budget::default(),
                &measured
            )
            .is_ok()
        );
        assert!(request.parsed_query().is_err());
        assert!(measured.is_empty());
    }
}
