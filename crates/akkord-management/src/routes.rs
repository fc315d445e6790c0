//! Routes and handlers of the management endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::Address;
use akkord_actor::ActorSystem;
use akkord_cluster::member::MemberStatus;
use akkord_cluster::membership::CommandError;
use akkord_cluster::shell::{Cluster, ClusterCommandError};
use akkord_remote::RemoteSystem;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tracing::{debug, warn};

use crate::address::parse_member_address;
use crate::metrics::{self, Snapshot};
use crate::model::{CommandResponse, ErrorResponse, HealthResponse, MemberEntry, MembersResponse};

/// Largest request body accepted; no endpoint reads a body.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// Time a request may take before the server responds with 503 instead.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The node the endpoints manage.
pub(crate) struct Node {
    pub(crate) cluster: Cluster,
    pub(crate) remote: RemoteSystem,
    pub(crate) system: ActorSystem,
}

type Shared = Arc<Node>;

/// Builds the router of every endpoint.
pub(crate) fn router(node: Shared) -> Router {
    Router::new()
        .route("/cluster/members", get(members))
        .route("/cluster/members/{address}", get(member))
        .route("/cluster/members/{address}/leave", post(leave))
        .route("/cluster/members/{address}/down", post(down))
        .route("/health/alive", get(alive))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(node)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(observe))
}

/// Applies the request timeout and logs each request at debug.
async fn observe(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            warn!(%method, path, timeout_s = REQUEST_TIMEOUT.as_secs(), "management request timed out");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{method} {path} timed out after {} s: the cluster daemon may be overloaded, \
                 retry later",
                    REQUEST_TIMEOUT.as_secs()
                ),
            )
        }
    };
    debug!(
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "handled management request"
    );
    response
}

async fn members(State(node): State<Shared>) -> Json<MembersResponse> {
    let state = node.cluster.state();
    Json(MembersResponse::from_state(
        node.cluster.self_node(),
        &state,
    ))
}

async fn member(
    State(node): State<Shared>,
    segment: Result<Path<String>, PathRejection>,
) -> Result<Json<MemberEntry>, ApiError> {
    let address = member_address(&node, segment)?;
    let state = node.cluster.state();
    let members = MembersResponse::from_state(node.cluster.self_node(), &state);
    members
        .member(&address.to_string())
        .cloned()
        .map(Json)
        .ok_or_else(|| unknown_member(&address))
}

async fn leave(
    State(node): State<Shared>,
    segment: Result<Path<String>, PathRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let address = member_address(&node, segment)?;
    match node.cluster.leave(address.clone()).await {
        Ok(()) => Ok(success(format!("leaving {address}"))),
        Err(error) => Err(command_error(&address, error)),
    }
}

async fn down(
    State(node): State<Shared>,
    segment: Result<Path<String>, PathRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let address = member_address(&node, segment)?;
    match node.cluster.down(address.clone()).await {
        Ok(()) => Ok(success(format!("downing {address}"))),
        Err(error) => Err(command_error(&address, error)),
    }
}

/// Parses the `{address}` path segment and checks that a member runs there.
fn member_address(
    node: &Node,
    segment: Result<Path<String>, PathRejection>,
) -> Result<Address, ApiError> {
    let Path(text) = segment.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid member address in the path: {rejection}"),
        )
    })?;
    let address = parse_member_address(&text, node.system.name())
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    if node.cluster.state().member_at(&address).is_none() {
        return Err(unknown_member(&address));
    }
    Ok(address)
}

fn command_error(address: &Address, failure: ClusterCommandError) -> ApiError {
    match failure {
        ClusterCommandError::UnknownAddress(_)
        | ClusterCommandError::Rejected(CommandError::UnknownMember(_)) => unknown_member(address),
        ClusterCommandError::Rejected(CommandError::NotMember) => {
            ApiError::new(StatusCode::CONFLICT, CommandError::NotMember.to_string())
        }
        ClusterCommandError::Stopped => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, failure.to_string())
        }
    }
}

fn unknown_member(address: &Address) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no member at {address}: list the members with GET /cluster/members"),
    )
}

async fn alive(State(node): State<Shared>) -> Response {
    if node.system.is_terminated() {
        return health(StatusCode::SERVICE_UNAVAILABLE, "terminated", None);
    }
    health(StatusCode::OK, "alive", None)
}

async fn ready(State(node): State<Shared>) -> Response {
    let status = node.cluster.self_member().map(|member| member.status);
    let is_ready = matches!(status, Some(MemberStatus::Up | MemberStatus::WeaklyUp));
    if is_ready && !node.system.is_terminated() {
        health(StatusCode::OK, "ready", status)
    } else {
        health(StatusCode::SERVICE_UNAVAILABLE, "not-ready", status)
    }
}

async fn metrics(State(node): State<Shared>) -> Response {
    let state = node.cluster.state();
    let is_leader = state.leader.as_ref() == Some(node.cluster.self_node());
    let stats = node.remote.transport().stats();
    let snapshot = Snapshot::of(&node.system, &state, is_leader, stats);
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&snapshot),
    )
        .into_response()
}

async fn not_found(method: Method, request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint for {method} {}: use GET /cluster/members, GET \
             /cluster/members/{{address}}, POST /cluster/members/{{address}}/leave or /down, \
             GET /health/alive, GET /health/ready or GET /metrics",
            request.uri().path()
        ),
    )
}

fn health(code: StatusCode, status: &str, member_status: Option<MemberStatus>) -> Response {
    let body = HealthResponse {
        status: status.to_owned(),
        member_status: member_status.map(|status| status.to_string()),
    };
    (code, Json(body)).into_response()
}

fn success(message: String) -> Json<CommandResponse> {
    Json(CommandResponse { message })
}

fn error(code: StatusCode, message: String) -> Response {
    ApiError::new(code, message).into_response()
}

/// An error status with an [`ErrorResponse`] body.
struct ApiError {
    code: StatusCode,
    message: String,
}

impl ApiError {
    fn new(code: StatusCode, message: String) -> Self {
        Self { code, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: self.message,
        };
        (self.code, Json(body)).into_response()
    }
}
