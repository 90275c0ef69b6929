//! Request dispatch (placeholder: catch-all only; routes follow).

use crate::handle::EmulatorHandle;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub(crate) async fn dispatch(State(_h): State<EmulatorHandle>) -> Response {
    (
        StatusCode::NOT_FOUND,
        [("content-type", "application/json")],
        r#"{"error":"404 Not Found"}"#,
    )
        .into_response()
}
