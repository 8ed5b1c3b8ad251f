//! `schema.graphql` is the API reference; it must match the code and describe everything.

#[test]
fn schema_graphql_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = photon::graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql is stale: run `cargo run -- export-schema` and commit the result"
    );
}

/// Names of types and fields in the SDL that have no description.
fn undescribed(sdl: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut in_description = false;
    let mut described = false;
    let mut current_type: Option<String> = None;
    for line in sdl.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("\"\"\"") {
            // A one-line `"""text"""` opens and closes; otherwise the line toggles.
            let one_line = trimmed.len() > 3 && trimmed.ends_with("\"\"\"");
            if !one_line {
                in_description = !in_description;
            }
            if !in_description {
                described = true;
            }
            continue;
        }
        if in_description {
            continue;
        }
        let is_field = line.starts_with('\t') && !line.starts_with("\t\t");
        let is_type_start = ["type ", "input ", "interface ", "enum "]
            .iter()
            .any(|k| line.starts_with(k));
        if is_type_start {
            let name = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            // Roots and the connection plumbing are async-graphql's, not ours.
            let ours = !matches!(name.as_str(), "Query" | "Mutation" | "PageInfo")
                && !name.ends_with("Connection");
            if ours && !described {
                missing.push(name.clone());
            }
            current_type = ours.then_some(name);
        } else if line.starts_with('}') {
            current_type = None;
        } else if is_field
            && !trimmed.starts_with(')')
            && let Some(ty) = &current_type
            && !described
            && !line.starts_with("\t\t")
        {
            let field = trimmed.split(['(', ':']).next().unwrap_or_default();
            let is_enum_value = field.chars().all(|c| c.is_ascii_uppercase() || c == '_');
            if !is_enum_value {
                missing.push(format!("{ty}.{field}"));
            }
        }
        described = false;
    }
    missing
}

#[test]
fn every_type_and_field_of_ours_is_described() {
    let missing = undescribed(&photon::graphql::sdl());
    assert!(missing.is_empty(), "add /// docs to: {missing:?}");
}
