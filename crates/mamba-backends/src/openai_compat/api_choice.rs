//! Which API a backend speaks, decided once per backend and remembered (an atomic: no lock
//! on the request path).

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::Error;
use crate::options::RequestOptions;
use crate::preset::WireApi;

/// The API one request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    Chat,
    Responses,
}

const UNKNOWN: u8 = 0;
const RESPONSES: u8 = 1;
const CHAT: u8 = 2;

/// The backend's choice: what it knows about the server, and which switches it may make.
#[derive(Debug)]
pub(crate) struct ApiChoice {
    state: AtomicU8,
    /// Auto: a server without the Responses API moves the backend to chat.
    fall_back: bool,
    /// A chat endpoint that says "Responses API only" moves the backend to it.
    switch: bool,
}

impl ApiChoice {
    /// `explicit`: set on the builder (never switched away from), else the preset's default.
    pub(crate) fn new(api: WireApi, explicit: bool) -> ApiChoice {
        let (state, fall_back, switch) = match api {
            WireApi::ChatCompletions => (CHAT, false, !explicit),
            WireApi::Responses => (RESPONSES, false, false),
            WireApi::Auto => (UNKNOWN, true, true),
        };
        ApiChoice { state: AtomicU8::new(state), fall_back, switch }
    }

    /// The API for a request with these options.
    pub(crate) fn pick(&self, options: &RequestOptions) -> Api {
        match self.state.load(Ordering::Relaxed) {
            CHAT => Api::Chat,
            // Auto sends what the Responses API cannot express to chat, this request only.
            _ if self.fall_back && super::responses::request::chat_only_options(options).is_some() => Api::Chat,
            _ => Api::Responses,
        }
    }

    /// The server answered on `api`: remember it, so a later 404 (a missing model) is not
    /// taken for a missing API.
    pub(crate) fn confirm(&self, api: Api) {
        if api == Api::Responses && self.fall_back {
            let _ = self.state.compare_exchange(UNKNOWN, RESPONSES, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// After `error` on `api`: the other API to try now (and from now on), if the error says
    /// this one is the wrong one.
    pub(crate) fn switch_after(&self, api: Api, error: &Error) -> Option<Api> {
        match api {
            Api::Responses
                if self.fall_back && self.state.load(Ordering::Relaxed) == UNKNOWN && has_no_responses_api(error) =>
            {
                tracing::info!(status = error.status(), "the server has no Responses API; using chat completions");
                self.state.store(CHAT, Ordering::Relaxed);
                Some(Api::Chat)
            }
            Api::Chat if self.switch && says_responses_only(error) => {
                tracing::info!("the server says the model works only with the Responses API; switching to it");
                self.state.store(RESPONSES, Ordering::Relaxed);
                Some(Api::Responses)
            }
            _ => None,
        }
    }

    /// What the backend speaks now: `chat`, `responses`, or `auto` while undecided.
    pub(crate) fn current(&self) -> WireApi {
        match self.state.load(Ordering::Relaxed) {
            CHAT => WireApi::ChatCompletions,
            RESPONSES => WireApi::Responses,
            _ => WireApi::Auto,
        }
    }
}

/// The answer of a server without `/responses`: 404, 405 or 501 that is not about the model,
/// or a 400 in the words servers use for an unknown route.
pub(crate) fn has_no_responses_api(error: &Error) -> bool {
    let text = error_text(error);
    let about_model = error.code() == Some("model_not_found")
        || text.contains("does not exist")
        || text.contains("model not found")
        || text.contains("no such model");
    match error.status() {
        Some(404 | 405 | 501) => !about_model,
        Some(400 | 422) => {
            !about_model
                && [
                    "invalid url",
                    "unknown endpoint",
                    "unknown url",
                    "no route",
                    "unrecognized request url",
                    "not found",
                ]
                .iter()
                .any(|w| text.contains(w))
        }
        _ => false,
    }
}

/// A chat endpoint's answer that the model works only with the Responses API (OpenAI: "This
/// model is only supported in v1/responses and not in v1/chat/completions.").
pub(crate) fn says_responses_only(error: &Error) -> bool {
    if !matches!(error.status(), Some(400 | 404 | 405)) {
        return false;
    }
    let text = error_text(error);
    text.contains("only supported in v1/responses")
        || (text.contains("responses api") && (text.contains("only") || text.contains("use the")))
        || (text.contains("/responses") && text.contains("not in v1/chat/completions"))
}

fn error_text(error: &Error) -> String {
    let mut text = error.message().to_ascii_lowercase();
    if let Some(body) = error.response_body() {
        text.push(' ');
        text.push_str(&body[..body.len().min(2048)].to_ascii_lowercase());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn err(status: u16, message: &str) -> Error {
        Error::new(ErrorKind::InvalidRequest, message).with_status(status)
    }

    #[test]
    fn missing_responses_api_is_recognised() {
        assert!(has_no_responses_api(&err(404, "Not Found")));
        assert!(has_no_responses_api(&err(405, "Method Not Allowed")));
        assert!(has_no_responses_api(&err(501, "not implemented")));
        assert!(has_no_responses_api(&err(400, "Invalid URL (POST /v1/responses)")));
        assert!(!has_no_responses_api(&err(400, "max_output_tokens must be positive")));
        assert!(!has_no_responses_api(&err(404, "The model `x` does not exist or you do not have access to it.")));
        assert!(!has_no_responses_api(&err(404, "x").with_code(Some("model_not_found".to_owned()))));
        assert!(!has_no_responses_api(&err(500, "Not Found")));
    }

    #[test]
    fn responses_only_models_are_recognised() {
        assert!(says_responses_only(&err(
            400,
            "This model is only supported in v1/responses and not in v1/chat/completions."
        )));
        assert!(says_responses_only(&err(400, "This model is only available through the Responses API.")));
        assert!(!says_responses_only(&err(400, "bad temperature")));
        assert!(!says_responses_only(&err(500, "only supported in v1/responses")));
    }

    #[test]
    fn auto_falls_back_once_and_remembers() {
        let choice = ApiChoice::new(WireApi::Auto, true);
        let plain = RequestOptions::new();
        assert_eq!(choice.pick(&plain), Api::Responses);
        assert_eq!(choice.pick(&RequestOptions::new().stop(["x"])), Api::Chat);
        assert_eq!(choice.switch_after(Api::Responses, &err(404, "Not Found")), Some(Api::Chat));
        assert_eq!(choice.pick(&plain), Api::Chat);
        assert_eq!(choice.current(), WireApi::ChatCompletions);
        // A confirmed Responses server does not fall back on a later 404.
        let choice = ApiChoice::new(WireApi::Auto, true);
        choice.confirm(Api::Responses);
        assert_eq!(choice.switch_after(Api::Responses, &err(404, "Not Found")), None);
        assert_eq!(choice.current(), WireApi::Responses);
    }

    #[test]
    fn chat_switches_to_responses_unless_pinned() {
        let only = err(400, "This model is only supported in v1/responses and not in v1/chat/completions.");
        let preset_default = ApiChoice::new(WireApi::ChatCompletions, false);
        assert_eq!(preset_default.switch_after(Api::Chat, &only), Some(Api::Responses));
        assert_eq!(preset_default.pick(&RequestOptions::new()), Api::Responses);
        let pinned = ApiChoice::new(WireApi::ChatCompletions, true);
        assert_eq!(pinned.switch_after(Api::Chat, &only), None);
        let responses = ApiChoice::new(WireApi::Responses, true);
        assert_eq!(responses.switch_after(Api::Responses, &err(404, "Not Found")), None);
        assert_eq!(responses.pick(&RequestOptions::new().stop(["x"])), Api::Responses);
    }
}
