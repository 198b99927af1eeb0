//! `chat`'s conversation log: each exchange (history, prompt, answer or failure, usage, cost,
//! latency) written as it ends.

use std::time::Instant;

use mamba_backends::{Message, ModelBackend, ModelResponse};

use super::setup::Prepared;
use crate::attach::Attachment;
use crate::error::CliError;
use mamba_home::log::{new_conversation_id, Exchange, Log};

/// Writes exchanges to the log. A log that cannot be written is reported once (the answer is
/// already printed) and makes the command fail at its end.
#[derive(Debug)]
pub(crate) struct Recorder {
    on: bool,
    cid: String,
    endpoint: String,
    streamed: bool,
    log: Option<Log>,
    failure: Option<CliError>,
}

impl Recorder {
    pub(crate) fn new(prepared: &Prepared, cid: Option<String>, endpoint: String, streamed: bool) -> Recorder {
        Recorder {
            on: prepared.log_on,
            cid: cid.unwrap_or_else(new_conversation_id),
            endpoint,
            streamed,
            log: None,
            failure: None,
        }
    }

    /// Records one exchange: `history` as sent (its system message), the user text, and the
    /// answer or the failure.
    pub(crate) fn record(
        &mut self,
        history: &[Message],
        user_text: &str,
        attachments: &[Attachment],
        backend: &dyn ModelBackend,
        result: Result<&ModelResponse, &CliError>,
        started: Instant,
    ) {
        if !self.on || self.failure.is_some() {
            return;
        }
        let model = backend.model();
        let mut x = match result {
            Ok(response) => {
                let mut x = Exchange::from_response(response);
                x.cost_usd = response.usage.as_ref().and_then(|u| backend.profile().cost(u));
                x.model = response.model.clone().filter(|m| !m.is_empty()).or_else(|| Some(model.to_owned()));
                x
            }
            Err(e) => Exchange {
                error: Some(crate::json::error_json(e)),
                model: Some(model.to_owned()),
                ..Exchange::default()
            },
        };
        x.conversation_id = self.cid.clone();
        x.endpoint = Some(self.endpoint.clone());
        x.system =
            history.iter().find(|m| m.role == mamba_backends::message::Role::System).map(|m| m.text().into_owned());
        x.prompt = user_text.to_owned();
        x.attachments = attachments.iter().map(|a| a.name().to_owned()).collect();
        x.latency_ms = Some(started.elapsed().as_millis() as u64);
        x.streamed = Some(self.streamed);
        let written = match &self.log {
            Some(log) => log.insert(&x).map(|_| ()),
            None => Log::open_default().and_then(|log| {
                log.insert(&x)?;
                self.log = Some(log);
                Ok(())
            }),
        };
        if let Err(e) = written {
            self.failure = Some(CliError::Log(format!("{e} (the answer was printed but not saved)")));
        }
    }

    /// The log's failure, if any, once the answers are out.
    pub(crate) fn finish(self) -> Result<(), CliError> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
