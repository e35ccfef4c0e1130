//! DPS over HTTPS on the hub's HTTPS port: the device registration API (register, then
//! poll the operation) authorised by the registration's SAS token or, without an
//! Authorization header, by the client certificate of the TLS connection, and the service-side
//! enrollment API (`/enrollments/{id}`, `/enrollmentGroups/{id}`) authorised by the hub's
//! policies (the provisioning host is the hub's host). Errors use DPS's error body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use serde_json::Value;

use super::enrollments::{self, EnrollmentDocument};
use super::registration::{RETRY_AFTER_SECS, Registrant};
use crate::policies::Permission;
use crate::rest::{ApiError, ApiVersion, authorize};
use crate::state::HubState;
use crate::websocket::ClientCertificates;
use iothub::dps::enrollment::{EnrollmentGroup, IndividualEnrollment};
use iothub::dps::registration::{RegistrationOperation, RegistrationRequest, error_body};
use iothub::error::{ErrorCode, ServiceError};

type Shared = Arc<HubState>;

/// An error on its way to a DPS client, in DPS's shape.
pub struct DpsError(pub ServiceError);

impl From<ServiceError> for DpsError {
    fn from(e: ServiceError) -> Self {
        DpsError(e)
    }
}

impl From<ApiError> for DpsError {
    fn from(e: ApiError) -> Self {
        DpsError(e.0)
    }
}

impl IntoResponse for DpsError {
    fn into_response(self) -> Response {
        let tracking = uuid::Uuid::new_v4().to_string();
        let status =
            StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = error_body(
            self.0.code.numeric(),
            &self.0.message,
            &tracking,
            chrono::Utc::now(),
        );
        (status, axum::Json(body)).into_response()
    }
}

type DpsResult<T> = Result<T, DpsError>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/{scope}/registrations/{reg}/register", put(register))
        .route(
            "/{scope}/registrations/{reg}/operations/{op}",
            get(operation_status),
        )
        .route(
            "/enrollments/{id}",
            put(put_enrollment::<IndividualEnrollment>)
                .get(get_enrollment::<IndividualEnrollment>)
                .delete(delete_enrollment::<IndividualEnrollment>),
        )
        .route(
            "/enrollmentGroups/{id}",
            put(put_enrollment::<EnrollmentGroup>)
                .get(get_enrollment::<EnrollmentGroup>)
                .delete(delete_enrollment::<EnrollmentGroup>),
        )
        .route("/enrollments/query", post(query::<IndividualEnrollment>))
        .route("/enrollmentGroups/query", post(query::<EnrollmentGroup>))
        .with_state(state)
}

/// How a registration request proves itself: the Authorization header's SAS token, else
/// the client certificate of the TLS connection.
enum Proof {
    Sas(String),
    Certificate(ClientCertificates),
}

fn proof(headers: &HeaderMap, certs: Option<Extension<ClientCertificates>>) -> DpsResult<Proof> {
    if let Some(v) = headers.get("authorization") {
        let token = v.to_str().map_err(|_| {
            DpsError(ServiceError::new(
                ErrorCode::IotHubUnauthorizedAccess,
                "The Authorization header is not text.",
            ))
        })?;
        return Ok(Proof::Sas(token.to_string()));
    }
    certs.map(|Extension(c)| Proof::Certificate(c)).ok_or_else(|| {
        DpsError(ServiceError::new(
            ErrorCode::IotHubUnauthorizedAccess,
            "The request has neither an Authorization header with a SharedAccessSignature nor a client certificate.",
        ))
    })
}

impl HubState {
    fn dps_authenticate_with(
        &self,
        scope: &str,
        reg: &str,
        proof: &Proof,
    ) -> Result<Registrant, ServiceError> {
        match proof {
            Proof::Sas(token) => self.dps_authenticate(scope, reg, token),
            Proof::Certificate(c) => self.dps_authenticate_certificate(scope, reg, &c.0),
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> DpsResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        DpsError(ServiceError::new(
            ErrorCode::ArgumentInvalid,
            format!("The request body is not valid JSON of the expected shape: {e}."),
        ))
    })
}

fn operation_response(status: StatusCode, op: &RegistrationOperation) -> Response {
    (status, axum::Json(op)).into_response()
}

/// SQLite work runs on a blocking thread, so the async workers keep serving.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> DpsResult<T> {
    crate::rest::off_worker(f).await.map_err(DpsError)
}

async fn register(
    State(state): State<Shared>,
    Path((scope, reg)): Path<(String, String)>,
    certs: Option<Extension<ClientCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> DpsResult<Response> {
    let proof = proof(&headers, certs)?;
    let request: RegistrationRequest = json_body(&body)?;
    let operation_id = blocking(move || {
        let who = state.dps_authenticate_with(&scope, &reg, &proof)?;
        state.dps_register(&who, &request)
    })
    .await?;
    let mut resp = operation_response(
        StatusCode::ACCEPTED,
        &RegistrationOperation::assigning(&operation_id),
    );
    resp.headers_mut()
        .insert("retry-after", HeaderValue::from(RETRY_AFTER_SECS));
    Ok(resp)
}

async fn operation_status(
    State(state): State<Shared>,
    Path((scope, reg, op)): Path<(String, String, String)>,
    certs: Option<Extension<ClientCertificates>>,
    headers: HeaderMap,
) -> DpsResult<Response> {
    let proof = proof(&headers, certs)?;
    let result = blocking(move || {
        state.dps_authenticate_with(&scope, &reg, &proof)?;
        state.dps_operation(&reg, &op)
    })
    .await?;
    Ok(operation_response(StatusCode::OK, &result))
}

async fn put_enrollment<T: EnrollmentDocument + Send + 'static>(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ApiVersion>,
    headers: HeaderMap,
    body: Bytes,
) -> DpsResult<Response> {
    authorize(&state, &headers, &q, &[Permission::RegistryWrite])?;
    let body: Value = json_body(&body)?;
    let tag = crate::rest::if_match(&headers).map(str::to_owned);
    let doc =
        blocking(move || enrollments::put::<T>(&state.store, &id, &body, tag.as_deref())).await?;
    Ok(axum::Json(doc).into_response())
}

async fn get_enrollment<T: EnrollmentDocument + Send + 'static>(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ApiVersion>,
    headers: HeaderMap,
) -> DpsResult<Response> {
    authorize(&state, &headers, &q, &[Permission::RegistryRead])?;
    let doc = blocking(move || enrollments::get::<T>(&state.store, &id)).await?;
    Ok(axum::Json(doc).into_response())
}

async fn delete_enrollment<T: EnrollmentDocument + Send + 'static>(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ApiVersion>,
    headers: HeaderMap,
) -> DpsResult<StatusCode> {
    authorize(&state, &headers, &q, &[Permission::RegistryWrite])?;
    let tag = crate::rest::if_match(&headers).map(str::to_owned);
    blocking(move || enrollments::delete::<T>(&state.store, &id, tag.as_deref())).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query endpoints return every enrollment of the kind (the local hub does not filter).
async fn query<T: EnrollmentDocument + Send + 'static>(
    State(state): State<Shared>,
    Query(q): Query<ApiVersion>,
    headers: HeaderMap,
) -> DpsResult<Response> {
    authorize(&state, &headers, &q, &[Permission::RegistryRead])?;
    let docs = blocking(move || enrollments::list::<T>(&state.store)).await?;
    Ok(axum::Json(docs).into_response())
}
