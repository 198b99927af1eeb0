//! The domain types: conversations ([`message`]), tools ([`tool`]) and answers
//! ([`response`]). How they are written for one server lives with the request builder.

pub(crate) mod batch;
mod message;
mod reasoning;
mod response;
mod tool;

pub use message::{Content, ContentPart, ImageDetail, Message, Role};
pub use reasoning::ReasoningItem;
pub(crate) use response::infer_finish_reason;
pub use response::{FinishReason, ModelResponse, Usage};
pub(crate) use tool::normalise_tool_call;
pub use tool::{ToolCall, ToolChoice, ToolDefinition};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::ResponseFormat;
    use serde_json::json;

    #[test]
    fn messages_serialise_in_wire_shape() {
        assert_eq!(
            serde_json::to_value(Message::system("be brief")).unwrap(),
            json!({"role":"system","content":"be brief"})
        );
        let user = Message::user(vec![ContentPart::text("what is this?"), ContentPart::image_url("https://x/y.png")]);
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]})
        );
        let call = ToolCall::new("call_1", "get_weather", r#"{"city":"Paris"}"#);
        let assistant = Message::assistant_with_tool_calls("", vec![call]);
        assert_eq!(
            serde_json::to_value(&assistant).unwrap(),
            json!({"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]})
        );
        assert_eq!(
            serde_json::to_value(Message::tool("call_1", "18C")).unwrap(),
            json!({"role":"tool","content":"18C","tool_call_id":"call_1"})
        );
    }

    #[test]
    fn messages_read_leniently() {
        let m: Message = serde_json::from_value(json!({"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":{"a":1}}}]})).unwrap();
        assert_eq!(m.content, Content::Text(String::new()));
        assert_eq!(m.tool_calls, vec![ToolCall::new("1", "f", r#"{"a":1}"#)]);
        let m: Message = serde_json::from_value(
            json!({"role":"assistant","tool_calls":[{"function":{"name":"f"}}],"reasoning_content":"r"}),
        )
        .unwrap();
        assert_eq!(m.tool_calls, vec![ToolCall::new("call_0", "f", "{}")]);
        assert_eq!(m.reasoning.as_deref(), Some("r"));
        let m: Message = serde_json::from_value(json!({"role":"user","content":[{"type":"input_audio","input_audio":{}}, {"type":"image_url","image_url":"data:x"}]})).unwrap();
        match &m.content {
            Content::Parts(parts) => {
                assert!(matches!(parts[0], ContentPart::Other(_)));
                assert_eq!(parts[1], ContentPart::image_url("data:x"));
            }
            other => panic!("{other:?}"),
        }
        // Round trip.
        let again: Message = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn tools_and_choices_wire_shape() {
        let tool = ToolDefinition::function(
            "get_weather",
            "Weather for a city",
            json!({"type":"object","properties":{"city":{"type":"string"}}}),
        );
        let v = serde_json::to_value(&tool).unwrap();
        assert_eq!(
            v,
            json!({"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}})
        );
        let back: ToolDefinition = serde_json::from_value(v).unwrap();
        assert_eq!(back, tool);
        let bare: ToolDefinition = serde_json::from_value(json!({"name":"f"})).unwrap();
        assert_eq!(bare.name, "f");
        assert!(serde_json::from_value::<ToolDefinition>(json!({"type":"code_interpreter"})).is_err());
        assert_eq!(serde_json::to_value(ToolChoice::Required).unwrap(), json!("required"));
        assert_eq!(
            serde_json::to_value(ToolChoice::Function("f".into())).unwrap(),
            json!({"type":"function","function":{"name":"f"}})
        );
        assert_eq!(
            serde_json::to_value(ResponseFormat::json_schema("answer", json!({"type":"object"}))).unwrap(),
            json!({"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"}}})
        );
    }

    #[test]
    fn finish_reasons_normalise() {
        assert_eq!(FinishReason::parse("eos"), Some(FinishReason::Stop));
        assert_eq!(FinishReason::parse("stop_sequence"), Some(FinishReason::Stop));
        assert_eq!(FinishReason::parse("model_length"), Some(FinishReason::Length));
        assert_eq!(FinishReason::parse("abort"), Some(FinishReason::Error));
        assert_eq!(FinishReason::parse("insufficient_system_resource"), Some(FinishReason::Error));
        assert_eq!(FinishReason::parse("function_call"), Some(FinishReason::ToolCalls));
        assert_eq!(FinishReason::parse("weird"), Some(FinishReason::Other("weird".into())));
        assert_eq!(FinishReason::parse(""), None);
        assert_eq!(infer_finish_reason(Some(FinishReason::Stop), true), Some(FinishReason::ToolCalls));
        assert_eq!(infer_finish_reason(None, true), Some(FinishReason::ToolCalls));
        assert_eq!(infer_finish_reason(Some(FinishReason::Length), true), Some(FinishReason::Length));
        assert_eq!(infer_finish_reason(Some(FinishReason::Stop), false), Some(FinishReason::Stop));
    }

    #[test]
    fn response_to_message_keeps_calls() {
        let r = ModelResponse {
            content: "x".into(),
            tool_calls: vec![ToolCall::new("a", "f", "{}")],
            ..Default::default()
        };
        let m = r.to_message();
        assert_eq!(m.role, Role::Assistant);
        assert_eq!(m.tool_calls.len(), 1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            json!({"content":"x","reasoning":null,"tool_calls":[{"id":"a","name":"f","arguments":"{}"}],"usage":null,"model":null,"finish_reason":null})
        );
    }
}
