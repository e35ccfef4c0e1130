//! The IoT Hub service REST API (identities, twins, direct
//! methods, queries, C2D purge), authorised with a policy's SAS token.

use crate::http_error::describe;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::call_log::CallLog;
use super::proxy::Proxy;
use crate::tls::{TlsError, Trust};
use iothub::connection_string::ServiceConnectionString;
use iothub::device::{DeviceIdentity, ModuleIdentity};
use iothub::error::{ErrorCode, ServiceError};
use iothub::method::{MethodInvocation, MethodResult};
use iothub::sas::generate_token;

/// The REST api-version this client speaks (what the Node service SDK uses).
pub const API_VERSION: &str = "2021-04-12";
/// Lifetime of the SAS tokens the client mints per request.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum ServiceClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot reach the hub at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Service(ServiceError),
    /// 429, or the daily quota is spent (403002): the hub asks the client to slow down,
    /// after `retry_after` when it said so (`Retry-After`).
    #[error("{error}")]
    Throttled {
        error: ServiceError,
        retry_after: Option<Duration>,
    },
    #[error("the hub answered {status} with a body that is not what IoT Hub sends: {reason}")]
    BadResponse { status: u16, reason: String },
}

impl ServiceClientError {
    /// The IoT Hub error code, when the hub refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ServiceClientError::Service(e) | ServiceClientError::Throttled { error: e, .. } => {
                Some(e.code)
            }
            _ => None,
        }
    }

    /// The service error, throttling included.
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self {
            ServiceClientError::Service(e) | ServiceClientError::Throttled { error: e, .. } => {
                Some(e)
            }
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, ServiceClientError>;

pub use crate::events::NewDeviceAuth;

/// One page of a query: items and the token for the next page, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryPage {
    pub items: Vec<Value>,
    pub continuation: Option<String>,
}

/// A REST client for one hub and one shared access policy.
#[derive(Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
    base: String,
    connection: ServiceConnectionString,
    calls: CallLog,
}

impl ServiceClient {
    /// `port` None means Azure's 443; the local hub's port comes from hub.json.
    pub fn new(
        connection: &ServiceConnectionString,
        trust: &Trust,
        port: Option<u16>,
    ) -> Result<ServiceClient> {
        ServiceClient::with_proxy(connection, trust, port, &Proxy::FromEnvironment)
    }

    /// As [`ServiceClient::new`], through `proxy` (HTTPS_PROXY / NO_PROXY by default).
    pub fn with_proxy(
        connection: &ServiceConnectionString,
        trust: &Trust,
        port: Option<u16>,
        proxy: &Proxy,
    ) -> Result<ServiceClient> {
        let unreachable = |reason: String| ServiceClientError::Unreachable {
            url: connection.host_name.clone(),
            reason,
        };
        let tls = trust.client_config(&[b"h2", b"http/1.1"])?;
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(Duration::from_secs(10));
        // reqwest reads HTTPS_PROXY and NO_PROXY itself unless told otherwise.
        let builder = match proxy {
            Proxy::FromEnvironment => builder,
            Proxy::None => builder.no_proxy(),
            Proxy::Url(url) => builder.proxy(
                reqwest::Proxy::all(url.as_str())
                    .map_err(|e| unreachable(format!("the proxy {url}: {e}")))?,
            ),
        };
        let http = builder.build().map_err(|e| unreachable(e.to_string()))?;
        let base = match port {
            None | Some(443) => format!("https://{}", connection.host_name),
            Some(p) => format!("https://{}:{p}", connection.host_name),
        };
        Ok(ServiceClient {
            http,
            base,
            connection: connection.clone(),
            calls: CallLog::default(),
        })
    }

    pub fn host_name(&self) -> &str {
        &self.connection.host_name
    }

    /// The connection string this client authenticates with (the AMQP clients use it too).
    pub fn connection(&self) -> &ServiceConnectionString {
        &self.connection
    }

    fn token(&self) -> Result<String> {
        let expiry = chrono::Utc::now().timestamp().max(0) as u64 + TOKEN_LIFETIME.as_secs();
        generate_token(
            &self.connection.host_name,
            &self.connection.key,
            Some(&self.connection.policy_name),
            expiry,
        )
        .map_err(|e| {
            ServiceClientError::Service(ServiceError::new(
                ErrorCode::IotHubUnauthorizedAccess,
                e.to_string(),
            ))
        })
    }

    /// Every request this client (and its clones) sent.
    pub fn calls(&self) -> &CallLog {
        &self.calls
    }

    /// Sends one request; a non-2xx answer becomes `ServiceClientError::Service`, or
    /// `Throttled` when the hub asks to slow down.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
        timeout: Duration,
    ) -> Result<(reqwest::header::HeaderMap, Value)> {
        let url = format!("{}{path}?api-version={API_VERSION}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .header("Authorization", self.token()?)
            .timeout(timeout);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.calls.record();
        let resp = req
            .send()
            .await
            .map_err(|e| ServiceClientError::Unreachable {
                url: url.clone(),
                reason: describe(&e),
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .map_err(|e| ServiceClientError::Unreachable {
                url,
                reason: describe(&e),
            })?;
        if !status.is_success() {
            let error = ServiceError::from_rest_body(status.as_u16(), &text);
            return Err(
                if status == StatusCode::TOO_MANY_REQUESTS || error.code.is_throttling() {
                    ServiceClientError::Throttled {
                        error,
                        retry_after: retry_after(&headers),
                    }
                } else {
                    ServiceClientError::Service(error)
                },
            );
        }
        if text.is_empty() || status == StatusCode::NO_CONTENT {
            return Ok((headers, Value::Null));
        }
        let value = serde_json::from_str(&text).map_err(|e| ServiceClientError::BadResponse {
            status: status.as_u16(),
            reason: e.to_string(),
        })?;
        Ok((headers, value))
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Value> {
        Ok(self
            .send(method, path, body, headers, Duration::from_secs(30))
            .await?
            .1)
    }

    pub async fn get_device(&self, device_id: &str) -> Result<DeviceIdentity> {
        let v = self
            .json(
                Method::GET,
                &format!("/devices/{}", enc(device_id)),
                None,
                &[],
            )
            .await?;
        parse(v)
    }

    pub async fn create_device(
        &self,
        device_id: &str,
        auth: &NewDeviceAuth,
    ) -> Result<DeviceIdentity> {
        let authentication = match auth {
            NewDeviceAuth::Sas => {
                json!({"type": "sas", "symmetricKey": {"primaryKey": null, "secondaryKey": null}})
            }
            NewDeviceAuth::X509 {
                primary_thumbprint,
                secondary_thumbprint,
            } => json!({"type": "selfSigned", "x509Thumbprint": {
                "primaryThumbprint": primary_thumbprint,
                "secondaryThumbprint": secondary_thumbprint.clone().unwrap_or_else(|| primary_thumbprint.clone())}}),
        };
        let body =
            json!({"deviceId": device_id, "status": "enabled", "authentication": authentication});
        let v = self
            .json(
                Method::PUT,
                &format!("/devices/{}", enc(device_id)),
                Some(&body),
                &[],
            )
            .await?;
        parse(v)
    }

    /// A bulk registry operation (`POST /devices`): up to 100 entries in Azure's
    /// ExportImportDevice form (`id`, `importMode`, ...); Azure's
    /// BulkRegistryOperationResult back, with an error per entry that failed.
    pub async fn bulk_devices(&self, entries: &[Value]) -> Result<Value> {
        let body = Value::Array(entries.to_vec());
        self.json(Method::POST, "/devices", Some(&body), &[]).await
    }

    /// Replaces an identity; fails with PreconditionFailed if it changed since `device` was read.
    pub async fn update_device(&self, device: &DeviceIdentity) -> Result<DeviceIdentity> {
        let body = serde_json::to_value(device).map_err(|e| ServiceClientError::BadResponse {
            status: 0,
            reason: e.to_string(),
        })?;
        let v = self
            .json(
                Method::PUT,
                &format!("/devices/{}", enc(&device.device_id)),
                Some(&body),
                &[("If-Match", format!("\"{}\"", device.etag))],
            )
            .await?;
        parse(v)
    }

    pub async fn delete_device(&self, device_id: &str) -> Result<()> {
        self.json(
            Method::DELETE,
            &format!("/devices/{}", enc(device_id)),
            None,
            &[("If-Match", "\"*\"".to_string())],
        )
        .await?;
        Ok(())
    }

    /// The module identities of a device.
    pub async fn list_modules(&self, device_id: &str) -> Result<Vec<ModuleIdentity>> {
        let v = self
            .json(
                Method::GET,
                &format!("/devices/{}/modules", enc(device_id)),
                None,
                &[],
            )
            .await?;
        parse(v)
    }

    /// A device's twin, or with `module_id` its module's.
    pub async fn get_twin(&self, device_id: &str, module_id: Option<&str>) -> Result<Value> {
        self.json(Method::GET, &twin_path(device_id, module_id), None, &[])
            .await
    }

    /// PATCHes tags and/or desired properties; with an etag, a concurrent change
    /// fails with PreconditionFailed instead of being overwritten.
    pub async fn patch_twin(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        patch: &Value,
        etag: Option<&str>,
    ) -> Result<Value> {
        let if_match = format!("\"{}\"", etag.unwrap_or("*"));
        self.json(
            Method::PATCH,
            &twin_path(device_id, module_id),
            Some(patch),
            &[("If-Match", if_match)],
        )
        .await
    }

    /// Calls a direct method; the HTTP wait covers both timeouts, as Azure's SDKs do.
    pub async fn invoke_method(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        call: &MethodInvocation,
    ) -> Result<MethodResult> {
        let path = format!("{}/methods", twin_path(device_id, module_id));
        let wait = call.response_timeout_in_seconds.unwrap_or(30)
            + call.connect_timeout_in_seconds.unwrap_or(0)
            + 10;
        let body = serde_json::to_value(call).map_err(|e| ServiceClientError::BadResponse {
            status: 0,
            reason: e.to_string(),
        })?;
        let (_, v) = self
            .send(
                Method::POST,
                &path,
                Some(&body),
                &[],
                Duration::from_secs(wait),
            )
            .await?;
        parse(v)
    }

    /// One page of a devices query.
    pub async fn query(
        &self,
        sql: &str,
        continuation: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<QueryPage> {
        let mut headers = Vec::new();
        if let Some(c) = continuation {
            headers.push(("x-ms-continuation", c.to_string()));
        }
        if let Some(n) = page_size {
            headers.push(("x-ms-max-item-count", n.to_string()));
        }
        let (h, v) = self
            .send(
                Method::POST,
                "/devices/query",
                Some(&json!({"query": sql})),
                &headers,
                Duration::from_secs(30),
            )
            .await?;
        let items = match v {
            Value::Array(items) => items,
            other => {
                return Err(ServiceClientError::BadResponse {
                    status: 200,
                    reason: format!("a query answer must be a JSON array, not {other}"),
                });
            }
        };
        let continuation = h
            .get("x-ms-continuation")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(QueryPage {
            items,
            continuation,
        })
    }

    /// Empties a device's C2D queue; returns how many messages were removed.
    pub async fn purge_c2d(&self, device_id: &str) -> Result<u64> {
        let v = self
            .json(
                Method::DELETE,
                &format!("/devices/{}/commands", enc(device_id)),
                None,
                &[],
            )
            .await?;
        Ok(v.get("totalMessagesPurged")
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }
}

/// `Retry-After` in seconds (IoT Hub sends seconds; a date form is taken as no hint).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

fn twin_path(device_id: &str, module_id: Option<&str>) -> String {
    match module_id {
        None => format!("/twins/{}", enc(device_id)),
        Some(m) => format!("/twins/{}/modules/{}", enc(device_id), enc(m)),
    }
}

fn enc(id: &str) -> String {
    iothub::encoding::url_encode(id)
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| ServiceClientError::BadResponse {
        status: 200,
        reason: e.to_string(),
    })
}
