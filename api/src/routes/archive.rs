//! `GET /archive/{session}.zip?user&upto&exp&sig`: a session archive, streamed. The link is
//! checked (signature in constant time, then expiry), then the member's place in the session,
//! then the photos are laid out and streamed as one stored ZIP of known length.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{IntoResponse, Response};

use crate::archive::link::{LinkError, LinkQuery};
use crate::archive::stream;
use crate::clock;
use crate::deps::Deps;
use crate::error::{ApiError, ErrorCode};
use crate::graphql::http::plain_error;
use crate::service::archive;

pub async fn download(
    State(deps): State<Deps>,
    Path(file): Path<String>,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let invalid = || {
        plain_error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this archive link is not valid",
        )
    };
    let Ok(Query(query)) = query else {
        return invalid();
    };
    let link = match deps.archive_links.check(&file, &query, clock::now()) {
        Ok(link) => link,
        Err(LinkError::Invalid) => return invalid(),
        Err(LinkError::Expired) => {
            return plain_error(
                StatusCode::GONE,
                ErrorCode::LinkExpired,
                "this archive link has expired; ask for a new one",
            );
        }
    };
    let contents = match archive::open_link(&deps, &link).await {
        Ok(contents) => contents,
        Err(err) => return refusal(&err),
    };
    let length = contents.byte_size();
    let disposition = content_disposition(&contents.file_name);
    let body = stream::body(deps.store.clone(), contents.items);
    (
        [
            (CONTENT_TYPE, "application/zip".to_owned()),
            (CONTENT_LENGTH, length.to_string()),
            (CONTENT_DISPOSITION, disposition),
            (CACHE_CONTROL, "private, no-store".to_owned()),
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response()
}

fn refusal(err: &ApiError) -> Response {
    let status = match err.code() {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::InternalServerError => {
            tracing::error!(error = err.detail(), "archive download failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    plain_error(status, err.code(), &err.client_message())
}

/// `attachment` with the file's name: an ASCII fallback (RFC 6266) and the UTF-8 name
/// (RFC 5987) that browsers prefer.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_file_name_is_given_safely_twice() {
        assert_eq!(
            super::content_disposition("Zoë's \"party\".zip"),
            "attachment; filename=\"Zo_'s _party_.zip\"; filename*=UTF-8''Zo%C3%AB%27s%20%22party%22.zip"
        );
    }
}
