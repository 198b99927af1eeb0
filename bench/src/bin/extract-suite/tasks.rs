//! The suite's tasks: a prompt, the JSON Schema of the answer, and the expected value, in six
//! groups (nested objects, enums, arrays, optional fields, numbers with bounds, strings with
//! patterns). "Correct" is [`correct`]: the answer equals the expected value with strings
//! compared trimmed and case-insensitively, numbers within a rounding error, arrays as
//! multisets, and fields the expected value lacks absent or `null`.

use serde_json::{json, Value};

/// One extraction task.
#[derive(Debug, Clone)]
pub(crate) struct Task {
    /// A short id, unique in the suite.
    pub(crate) id: &'static str,
    /// The group: `nested`, `enum`, `array`, `optional`, `bounds`, `pattern`.
    pub(crate) group: &'static str,
    /// The user message.
    pub(crate) prompt: &'static str,
    /// The schema the answer must validate against.
    pub(crate) schema: Value,
    /// The right answer.
    pub(crate) expected: Value,
}

fn task(id: &'static str, group: &'static str, prompt: &'static str, schema: Value, expected: Value) -> Task {
    Task { id, group, prompt, schema, expected }
}

/// Every task of the suite, in a fixed order.
#[allow(clippy::too_many_lines)]
pub(crate) fn all() -> Vec<Task> {
    let s = json!({"type": "string"});
    let int = json!({"type": "integer"});
    vec![
        // Nested objects.
        task(
            "person",
            "nested",
            "Extract the person: Alice Smith is 34 years old and lives in Paris.",
            json!({"type": "object", "properties": {"name": s, "age": int, "city": s},
                   "required": ["name", "age", "city"], "additionalProperties": false}),
            json!({"name": "Alice Smith", "age": 34, "city": "Paris"}),
        ),
        task(
            "address",
            "nested",
            "Extract the contact: Bob Jones lives at 12 Baker Street, London, postcode NW1 6XE.",
            json!({"type": "object", "properties": {
                "name": s,
                "address": {"type": "object", "properties": {"street": s, "city": s, "postcode": s},
                            "required": ["street", "city", "postcode"]}},
                "required": ["name", "address"]}),
            json!({"name": "Bob Jones", "address": {"street": "12 Baker Street", "city": "London", "postcode": "NW1 6XE"}}),
        ),
        task(
            "order",
            "nested",
            "Extract the order: order 1042 by Carol, 2 apples at 0.5 dollars each.",
            json!({"type": "object", "properties": {
                "order_id": int,
                "customer": {"type": "object", "properties": {"name": s}, "required": ["name"]},
                "item": {"type": "object", "properties": {"name": s, "quantity": int, "unit_price": {"type": "number"}},
                         "required": ["name", "quantity", "unit_price"]}},
                "required": ["order_id", "customer", "item"]}),
            json!({"order_id": 1042, "customer": {"name": "Carol"}, "item": {"name": "apples", "quantity": 2, "unit_price": 0.5}}),
        ),
        task(
            "company",
            "nested",
            "Extract the company: Acme Corp was founded in 1999; its CEO is Dana White (dana@acme.com).",
            json!({"type": "object", "properties": {
                "company": s, "founded": int,
                "ceo": {"type": "object", "properties": {"name": s, "email": s}, "required": ["name", "email"]}},
                "required": ["company", "founded", "ceo"]}),
            json!({"company": "Acme Corp", "founded": 1999, "ceo": {"name": "Dana White", "email": "dana@acme.com"}}),
        ),
        task(
            "event",
            "nested",
            "Extract the event: the Rust meetup on 2024-05-17 at 18:30 in Berlin, hosted by Eve.",
            json!({"type": "object", "properties": {
                "title": s,
                "when": {"type": "object", "properties": {"date": s, "time": s}, "required": ["date", "time"]},
                "city": s, "host": s},
                "required": ["title", "when", "city", "host"]}),
            json!({"title": "Rust meetup", "when": {"date": "2024-05-17", "time": "18:30"}, "city": "Berlin", "host": "Eve"}),
        ),
        task(
            "book",
            "nested",
            "Extract the book: Dune, by Frank Herbert, published by Chilton in 1965.",
            json!({"type": "object", "properties": {"book": {"type": "object", "properties": {
                "title": s,
                "author": {"type": "object", "properties": {"first_name": s, "last_name": s}, "required": ["first_name", "last_name"]},
                "publisher": {"type": "object", "properties": {"name": s, "year": int}, "required": ["name", "year"]}},
                "required": ["title", "author", "publisher"]}}, "required": ["book"]}),
            json!({"book": {"title": "Dune", "author": {"first_name": "Frank", "last_name": "Herbert"},
                            "publisher": {"name": "Chilton", "year": 1965}}}),
        ),
        // Enums.
        task(
            "sentiment_pos",
            "enum",
            "Classify the sentiment of this review: 'I absolutely love this phone, best purchase ever.'",
            json!({"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}},
                   "required": ["sentiment"]}),
            json!({"sentiment": "positive"}),
        ),
        task(
            "sentiment_neg",
            "enum",
            "Classify the sentiment of this review: 'The delivery was late and the box was crushed.'",
            json!({"type": "object", "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}},
                   "required": ["sentiment"]}),
            json!({"sentiment": "negative"}),
        ),
        task(
            "priority",
            "enum",
            "Give the priority of this ticket: 'The production database is down and all customers are affected.'",
            json!({"type": "object", "properties": {"priority": {"type": "string", "enum": ["low", "medium", "high", "critical"]}},
                   "required": ["priority"]}),
            json!({"priority": "critical"}),
        ),
        task(
            "language",
            "enum",
            "Which language is this sentence in: 'Bonjour, comment allez-vous ?'",
            json!({"type": "object", "properties": {"language": {"type": "string", "enum": ["english", "french", "german", "spanish"]}},
                   "required": ["language"]}),
            json!({"language": "french"}),
        ),
        task(
            "traffic_light",
            "enum",
            "The traffic light shows red. Which color is it, and must a car stop?",
            json!({"type": "object", "properties": {
                "color": {"type": "string", "enum": ["red", "yellow", "green"]}, "stop": {"type": "boolean"}},
                "required": ["color", "stop"]}),
            json!({"color": "red", "stop": true}),
        ),
        task(
            "weekday",
            "enum",
            "The meeting is on the day after Monday. Which day is it?",
            json!({"type": "object", "properties": {"day": {"type": "string",
                "enum": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]}},
                "required": ["day"]}),
            json!({"day": "tuesday"}),
        ),
        // Arrays.
        task(
            "fruits",
            "array",
            "List the fruits mentioned: I bought apples, bananas and cherries.",
            json!({"type": "object", "properties": {"fruits": {"type": "array", "items": s}}, "required": ["fruits"]}),
            json!({"fruits": ["apples", "bananas", "cherries"]}),
        ),
        task(
            "numbers",
            "array",
            "Extract all the numbers in this text: 3, 14, 15 and 92.",
            json!({"type": "object", "properties": {"numbers": {"type": "array", "items": int}}, "required": ["numbers"]}),
            json!({"numbers": [3, 14, 15, 92]}),
        ),
        task(
            "team",
            "array",
            "List the team members and their roles: Ann is the lead, Ben the developer, Cid the tester.",
            json!({"type": "object", "properties": {"members": {"type": "array", "items": {
                "type": "object", "properties": {"name": s, "role": s}, "required": ["name", "role"]}}},
                "required": ["members"]}),
            json!({"members": [{"name": "Ann", "role": "lead"}, {"name": "Ben", "role": "developer"}, {"name": "Cid", "role": "tester"}]}),
        ),
        task(
            "cities_one",
            "array",
            "List the cities mentioned, each as an object with its name: we only visited Rome.",
            json!({"type": "array", "items": {"type": "object", "properties": {"name": s}, "required": ["name"]}}),
            json!([{"name": "Rome"}]),
        ),
        task(
            "primary_colors",
            "array",
            "Give the three primary colors of paint.",
            json!({"type": "object", "properties": {"colors": {"type": "array", "items": s, "minItems": 3, "maxItems": 3}},
                   "required": ["colors"]}),
            json!({"colors": ["red", "yellow", "blue"]}),
        ),
        task(
            "letters",
            "array",
            "List the distinct letters of the word 'banana', each once.",
            json!({"type": "object", "properties": {"letters": {"type": "array", "items": s, "uniqueItems": true}},
                   "required": ["letters"]}),
            json!({"letters": ["b", "a", "n"]}),
        ),
        task(
            "planets",
            "array",
            "Name the two planets closest to the Sun, as a list.",
            json!({"type": "array", "items": s, "minItems": 2, "maxItems": 2}),
            json!(["Mercury", "Venus"]),
        ),
        // Optional fields.
        task(
            "contact_no_phone",
            "optional",
            "Extract the contact: Frank; no phone number was given.",
            json!({"type": "object", "properties": {"name": s, "phone": s}, "required": ["name"]}),
            json!({"name": "Frank"}),
        ),
        task(
            "contact_phone",
            "optional",
            "Extract the contact: Grace, phone +44 20 7946 0958.",
            json!({"type": "object", "properties": {"name": s, "phone": s}, "required": ["name"]}),
            json!({"name": "Grace", "phone": "+44 20 7946 0958"}),
        ),
        task(
            "middle_name",
            "optional",
            "Extract the name: Henry Ford has no middle name.",
            json!({"type": "object", "properties": {"name": s, "middle_name": {"type": ["string", "null"]}},
                   "required": ["name", "middle_name"]}),
            json!({"name": "Henry Ford", "middle_name": null}),
        ),
        task(
            "article",
            "optional",
            "Extract the article: 'Rust in 2025', written by Ivy; it has no subtitle.",
            json!({"type": "object", "properties": {
                "title": s, "subtitle": s,
                "author": {"type": "object", "properties": {"name": s}, "required": ["name"]}},
                "required": ["title"]}),
            json!({"title": "Rust in 2025", "author": {"name": "Ivy"}}),
        ),
        task(
            "aliases",
            "optional",
            "Extract the person: Jack, also known as Jackie and J.",
            json!({"type": "object", "properties": {"name": s, "aliases": {"type": "array", "items": s}}, "required": ["name"]}),
            json!({"name": "Jack", "aliases": ["Jackie", "J"]}),
        ),
        // Numbers with bounds.
        task(
            "percent",
            "bounds",
            "A test run passed 45 of its 50 cases. What percentage passed?",
            json!({"type": "object", "properties": {"percent": {"type": "number", "minimum": 0, "maximum": 100}},
                   "required": ["percent"]}),
            json!({"percent": 90}),
        ),
        task(
            "room_temperature",
            "bounds",
            "It is 21.5 degrees Celsius in the room. What is the temperature?",
            json!({"type": "object", "properties": {"celsius": {"type": "number", "minimum": -50, "maximum": 60}},
                   "required": ["celsius"]}),
            json!({"celsius": 21.5}),
        ),
        task(
            "child_age",
            "bounds",
            "Mia turned 7 last week. How old is she?",
            json!({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0, "maximum": 150}},
                   "required": ["age"]}),
            json!({"age": 7}),
        ),
        task(
            "coin",
            "bounds",
            "What is the probability of heads when tossing a fair coin?",
            json!({"type": "object", "properties": {"p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
                   "required": ["p"]}),
            json!({"p": 0.5}),
        ),
        task(
            "dozen",
            "bounds",
            "How many eggs are in a dozen?",
            json!({"type": "object", "properties": {"count": {"type": "integer", "minimum": 0, "multipleOf": 12}},
                   "required": ["count"]}),
            json!({"count": 12}),
        ),
        // Strings with patterns.
        task(
            "invoice_date",
            "pattern",
            "The invoice is dated March 5, 2024. Give the date as YYYY-MM-DD.",
            json!({"type": "object", "properties": {"date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}},
                   "required": ["date"]}),
            json!({"date": "2024-03-05"}),
        ),
        task(
            "zip",
            "pattern",
            "Ship the parcel to 90210 Beverly Hills. What is the ZIP code?",
            json!({"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["zip"]}),
            json!({"zip": "90210"}),
        ),
        task(
            "sku",
            "pattern",
            "Product code AB-1234 is out of stock. Give the code and whether it is in stock.",
            json!({"type": "object", "properties": {
                "sku": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4}$"}, "in_stock": {"type": "boolean"}},
                "required": ["sku", "in_stock"]}),
            json!({"sku": "AB-1234", "in_stock": false}),
        ),
        task(
            "email",
            "pattern",
            "Write to kim@example.org for details. What is the email address?",
            json!({"type": "object", "properties": {"email": {"type": "string", "pattern": "^[^@ ]+@[^@ ]+\\.[a-z]+$"}},
                   "required": ["email"]}),
            json!({"email": "kim@example.org"}),
        ),
        task(
            "hex_color",
            "pattern",
            "The brand color is hex ff8800. Give it as #rrggbb in lowercase.",
            json!({"type": "object", "properties": {"color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"}},
                   "required": ["color"]}),
            json!({"color": "#ff8800"}),
        ),
        task(
            "country_code",
            "pattern",
            "Give the two-letter ISO country code of Germany, in capitals.",
            json!({"type": "object", "properties": {"code": {"type": "string", "minLength": 2, "maxLength": 2, "pattern": "^[A-Z]{2}$"}},
                   "required": ["code"]}),
            json!({"code": "DE"}),
        ),
    ]
}

/// Whether `actual` is the right answer `expected` (see the module doc).
pub(crate) fn correct(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(a), Value::String(e)) => a.trim().eq_ignore_ascii_case(e.trim()),
        (Value::Number(a), Value::Number(e)) => match (a.as_f64(), e.as_f64()) {
            (Some(a), Some(e)) => (a - e).abs() <= 1e-9 * e.abs().max(1.0),
            _ => false,
        },
        (Value::Array(a), Value::Array(e)) => {
            if a.len() != e.len() {
                return false;
            }
            // As multisets: each expected item matched by a distinct actual one.
            let mut used = vec![false; a.len()];
            e.iter().all(|want| {
                let found = a.iter().enumerate().find(|(i, got)| !used[*i] && correct(got, want));
                found.map(|(i, _)| used[i] = true).is_some()
            })
        }
        (Value::Object(a), Value::Object(e)) => {
            e.iter().all(|(k, want)| {
                a.get(k).is_some_and(|got| correct(got, want)) || (want.is_null() && !a.contains_key(k))
            }) && a.iter().all(|(k, got)| e.contains_key(k) || got.is_null())
        }
        (a, e) => a == e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_many_unique_and_their_answers_validate() {
        let tasks = all();
        assert!(tasks.len() >= 30);
        let mut ids: Vec<_> = tasks.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), tasks.len());
        for t in &tasks {
            assert!(correct(&t.expected, &t.expected), "{}", t.id);
        }
    }

    #[test]
    fn correctness_is_lenient_where_it_should_be() {
        assert!(correct(&json!({"a": " Paris ", "b": 1.0}), &json!({"a": "paris", "b": 1})));
        assert!(correct(&json!(["b", "a"]), &json!(["a", "b"])));
        assert!(correct(&json!({"name": "F", "phone": null}), &json!({"name": "F"})));
        assert!(!correct(&json!({"name": "F", "phone": ""}), &json!({"name": "F"})));
        assert!(!correct(&json!(["a", "a"]), &json!(["a", "b"])));
        assert!(!correct(&json!({"x": 2}), &json!({"x": 3})));
    }
}
