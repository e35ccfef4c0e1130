//! The hub's SASL acceptor: PLAIN with `{policy}@sas.root.{hub}` and a SAS token
//! (verified here, so a bad token fails the SASL outcome), ANONYMOUS and MSSBCBS
//! (followed by CBS). The login is recorded for the connection that follows.

use std::sync::{Arc, Mutex};

use fe2o3_amqp::acceptor::SaslAcceptor;
use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::types::primitives::{Array, Symbol};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};

use super::auth::{Grant, verify_service_token};
use crate::state::HubState;
use iothub::amqp_model::{SASL_MSSBCBS, plain_policy};

#[derive(Clone)]
pub struct HubSasl {
    state: Arc<HubState>,
    /// Set when PLAIN succeeded; read once the connection is open.
    pub login: Arc<Mutex<Option<Grant>>>,
}

impl HubSasl {
    pub fn new(state: Arc<HubState>) -> HubSasl {
        HubSasl {
            state,
            login: Arc::new(Mutex::new(None)),
        }
    }

    fn plain(&self, response: &[u8]) -> Result<Grant, String> {
        let mut parts = response.split(|b| *b == 0);
        let _authzid = parts.next();
        let user = parts.next().ok_or("no user name")?;
        let pass = parts.next().ok_or("no password")?;
        let user = std::str::from_utf8(user).map_err(|_| "user name is not UTF-8")?;
        let pass = std::str::from_utf8(pass).map_err(|_| "password is not UTF-8")?;
        let policy = plain_policy(user, self.state.hub_name())
            .ok_or_else(|| format!("'{user}' is not {{policy}}@sas.root.{{hub}}"))?;
        let grant = verify_service_token(&self.state, pass)?;
        if grant.policy != policy {
            return Err(format!(
                "the token is signed for policy '{}', not '{policy}'",
                grant.policy
            ));
        }
        Ok(grant)
    }
}

fn outcome(code: SaslCode) -> SaslServerFrame {
    SaslServerFrame::Outcome(SaslOutcome {
        code,
        additional_data: None,
    })
}

impl SaslAcceptor for HubSasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![
            Symbol::from("PLAIN"),
            Symbol::from("ANONYMOUS"),
            Symbol::from(SASL_MSSBCBS),
        ])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        match init.mechanism.as_str() {
            "PLAIN" => {
                let response = init
                    .initial_response
                    .map(|b| b.into_vec())
                    .unwrap_or_default();
                match self.plain(&response) {
                    Ok(grant) => {
                        *self.login.lock().unwrap_or_else(|p| p.into_inner()) = Some(grant);
                        outcome(SaslCode::Ok)
                    }
                    Err(why) => {
                        tracing::info!(%why, "amqp SASL PLAIN refused");
                        outcome(SaslCode::Auth)
                    }
                }
            }
            "ANONYMOUS" | SASL_MSSBCBS => outcome(SaslCode::Ok),
            _ => outcome(SaslCode::Auth),
        }
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        outcome(SaslCode::Sys)
    }
}
