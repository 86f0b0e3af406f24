//! A config type's JSON schema, reduced to what the manager needs: a tree of structs and typed
//! leaf fields.
//!
//! schemars produces a full JSON Schema; this module normalises it once (nullable `Option`s
//! unwrapped, `$ref`s resolved, string enums collected from `enum`/`const`/`oneOf`) so that env
//! parsing, default filling, missing-field detection, validation and prompting all walk the same
//! simple tree instead of re-interpreting JSON Schema each time.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::ConfigError;

/// How deep `$ref`s are followed before a recursive type is treated as an opaque JSON leaf.
const MAX_DEPTH: usize = 16;

/// The JSON type of a leaf field, driving env parsing, prompting and validation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldKind {
    /// A string.
    String,
    /// An integer (signed or unsigned).
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of a fixed set of values (usually the strings of a unit enum).
    Enum(Vec<Value>),
    /// A JSON array.
    Array,
    /// A JSON object without declared fields (a map).
    Object,
    /// Anything (no type, or several types).
    Any,
}

impl FieldKind {
    /// The type as people read it in messages: "an integer", "one of: fast, slow".
    pub fn expected(&self) -> String {
        match self {
            Self::String => "a string".into(),
            Self::Integer => "an integer".into(),
            Self::Number => "a number".into(),
            Self::Boolean => "a boolean (true/false/1/0/yes/no)".into(),
            Self::Enum(values) => format!("one of: {}", enum_list(values)),
            Self::Array => "a JSON array".into(),
            Self::Object => "a JSON object".into(),
            Self::Any => "a JSON value".into(),
        }
    }

    /// Short name for listings: "string", "integer", "enum".
    pub fn name(&self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Enum(_) => "enum",
            Self::Array => "array",
            Self::Object => "object",
            Self::Any => "JSON",
        }
    }
}

pub(crate) fn enum_list(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A leaf field of a config: what a single environment variable or prompt supplies.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Path from the root, e.g. `["database", "port"]`.
    pub path: Vec<String>,
    /// The type.
    pub kind: FieldKind,
    /// Marked `x-secret: true` or `writeOnly: true` in the schema (itself or an enclosing struct).
    pub secret: bool,
    /// The schema `description` (the field's doc comment).
    pub description: Option<String>,
    /// The schema `default` of the field, or the value at this path in an enclosing struct's
    /// default.
    pub default: Option<Value>,
    /// Whether `null` is accepted (an `Option`).
    pub nullable: bool,
    /// Inclusive bounds for numbers, from the schema.
    pub minimum: Option<f64>,
    /// See `minimum`.
    pub maximum: Option<f64>,
}

impl Field {
    /// The dotted path, e.g. `database.port`.
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

#[derive(Debug, Clone)]
struct Node {
    secret: bool,
    description: Option<String>,
    default: Option<Value>,
    nullable: bool,
    minimum: Option<f64>,
    maximum: Option<f64>,
    shape: Shape,
}

#[derive(Debug, Clone)]
enum Shape {
    Struct {
        props: Vec<(String, Node)>,
        required: BTreeSet<String>,
    },
    Leaf(FieldKind),
}

/// The normalised schema of one config type.
#[derive(Debug, Clone)]
pub struct ConfigSchema {
    key: String,
    /// The JSON schema as generated (what is stored beside the document for the CLI).
    json: Value,
    root: Node,
    fields: Vec<Field>,
}

impl ConfigSchema {
    /// Normalise the schema of `T` (generated for deserialisation, subschemas inlined).
    pub fn of<T: schemars::JsonSchema>(key: &str) -> Result<Self, ConfigError> {
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .with(|s| s.inline_subschemas = true)
            .for_deserialize()
            .into_generator();
        let schema = generator.into_root_schema_for::<T>();
        Self::from_json(key, schema.as_value())
    }

    /// Normalise an already generated JSON schema (root must be an object with properties).
    pub fn from_json(key: &str, schema: &Value) -> Result<Self, ConfigError> {
        let defs = schema
            .get("$defs")
            .or_else(|| schema.get("definitions"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let root = build(schema, &defs, 0);
        if !matches!(root.shape, Shape::Struct { .. }) {
            return Err(ConfigError::UnsupportedSchema {
                key: key.to_owned(),
                reason: "the root is not a struct with named fields".into(),
            });
        }
        let mut fields = Vec::new();
        collect_fields(&root, &mut Vec::new(), false, None, &mut fields);
        Ok(Self {
            key: key.to_owned(),
            json: schema.clone(),
            root,
            fields,
        })
    }

    /// The JSON schema this was built from: what [`crate::ConfigManager`] stores beside the
    /// document (at `_schema/<KEY>`) so tools without the Rust type can type, check and mask it.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Copy into `new` every field of `stored` that this schema does not declare (at any depth of
    /// declared structs): fields written by a newer version of the application survive a write by
    /// an older one. Declared fields are left as `new` has them.
    pub fn keep_undeclared(&self, stored: &Map<String, Value>, new: &mut Map<String, Value>) {
        keep_undeclared(&self.root, stored, new);
    }

    /// The config key this schema belongs to.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Every leaf field, depth first, in schema order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The leaf field at `path`, if any.
    pub fn field(&self, path: &[String]) -> Option<&Field> {
        self.fields.iter().find(|f| f.path == path)
    }

    /// Insert schema defaults for absent fields and create absent required structs (so their
    /// own defaults apply and their missing fields are reported one by one).
    pub fn fill_defaults(&self, value: &mut Map<String, Value>) {
        fill(&self.root, value);
    }

    /// The required leaf fields absent from `value` (call after [`ConfigSchema::fill_defaults`]).
    pub fn missing(&self, value: &Map<String, Value>) -> Vec<&Field> {
        let mut paths = Vec::new();
        missing(&self.root, value, &mut Vec::new(), &mut paths);
        paths
            .iter()
            .filter_map(|p| self.field(p))
            .collect::<Vec<_>>()
    }

    /// Type and range violations in `value`. Missing fields are not reported here.
    pub fn problems(&self, value: &Map<String, Value>) -> Vec<crate::Problem> {
        let mut out = Vec::new();
        check_struct(&self.root, value, &mut Vec::new(), &mut out);
        out
    }

    /// Every string found at a secret field's path (used to scrub third-party messages).
    pub(crate) fn secret_strings(&self, value: &Map<String, Value>) -> Vec<String> {
        let root = Value::Object(value.clone());
        let mut out = Vec::new();
        for field in self.fields.iter().filter(|f| f.secret) {
            let mut cur = Some(&root);
            for seg in &field.path {
                cur = cur.and_then(|v| v.get(seg));
            }
            match cur {
                Some(Value::String(s)) if !s.is_empty() => out.push(s.clone()),
                Some(v @ (Value::Number(_) | Value::Array(_) | Value::Object(_))) => {
                    out.push(v.to_string())
                }
                _ => {}
            }
        }
        // Longest first so a secret containing another is replaced whole.
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out
    }
}

fn keep_undeclared(node: &Node, stored: &Map<String, Value>, new: &mut Map<String, Value>) {
    let Shape::Struct { props, .. } = &node.shape else {
        return;
    };
    for (name, value) in stored {
        match props.iter().find(|(p, _)| p == name) {
            None => {
                new.entry(name.clone()).or_insert_with(|| value.clone());
            }
            Some((_, child)) => {
                if let (Value::Object(stored_child), Some(Value::Object(new_child))) =
                    (value, new.get_mut(name))
                {
                    keep_undeclared(child, stored_child, new_child);
                }
            }
        }
    }
}

fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let mut cur = schema;
    for _ in 0..MAX_DEPTH {
        let Some(reference) = cur.get("$ref").and_then(Value::as_str) else {
            return cur;
        };
        let name = reference
            .rsplit_once('/')
            .map_or(reference, |(_, name)| name);
        match defs.get(name) {
            Some(target) => cur = target,
            None => return cur,
        }
    }
    cur
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null")
        || v.get("const").is_some_and(Value::is_null)
}

fn build(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Node {
    let outer = schema;
    let schema = resolve(schema, defs);
    let flag = |v: &Value, name: &str| v.get(name).and_then(Value::as_bool) == Some(true);
    let mut node = Node {
        secret: flag(outer, "x-secret")
            || flag(outer, "writeOnly")
            || flag(schema, "x-secret")
            || flag(schema, "writeOnly"),
        description: outer
            .get("description")
            .or_else(|| schema.get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        default: outer
            .get("default")
            .or_else(|| schema.get("default"))
            .cloned(),
        nullable: false,
        minimum: schema.get("minimum").and_then(Value::as_f64),
        maximum: schema.get("maximum").and_then(Value::as_f64),
        shape: Shape::Leaf(FieldKind::Any),
    };
    if depth > MAX_DEPTH {
        return node;
    }

    // `Option<T>`: `anyOf: [T, {type: null}]` (or oneOf) — unwrap to T, remember nullability.
    for combinator in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(combinator).and_then(Value::as_array) {
            let non_null: Vec<&Value> = alts.iter().filter(|a| !is_null_schema(a)).collect();
            let has_null = non_null.len() != alts.len();
            if non_null.len() == 1 {
                let inner = build(non_null[0], defs, depth + 1);
                return merge_outer(node, inner, has_null);
            }
            // A unit enum with documented variants: every alternative is a const/enum.
            let mut values = Vec::new();
            let all_consts = non_null.iter().all(|a| {
                let a = resolve(a, defs);
                if let Some(c) = a.get("const") {
                    values.push(c.clone());
                    true
                } else if let Some(e) = a.get("enum").and_then(Value::as_array) {
                    values.extend(e.iter().filter(|v| !v.is_null()).cloned());
                    true
                } else {
                    false
                }
            });
            node.nullable = has_null;
            node.shape = Shape::Leaf(if all_consts && !values.is_empty() {
                FieldKind::Enum(values)
            } else {
                FieldKind::Any
            });
            return node;
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array)
        && all.len() == 1
    {
        let inner = build(&all[0], defs, depth + 1);
        return merge_outer(node, inner, false);
    }

    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        node.nullable = values.iter().any(Value::is_null);
        node.shape = Shape::Leaf(FieldKind::Enum(
            values.iter().filter(|v| !v.is_null()).cloned().collect(),
        ));
        return node;
    }
    if let Some(c) = schema.get("const") {
        node.shape = Shape::Leaf(FieldKind::Enum(vec![c.clone()]));
        return node;
    }

    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    node.nullable = types.contains(&"null");
    let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    let kind = match types.as_slice() {
        ["string"] => FieldKind::String,
        ["integer"] => FieldKind::Integer,
        ["number"] => FieldKind::Number,
        ["boolean"] => FieldKind::Boolean,
        ["array"] => FieldKind::Array,
        ["object"] => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let required = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let props = props
                    .iter()
                    .map(|(name, s)| (name.clone(), build(s, defs, depth + 1)))
                    .collect();
                node.shape = Shape::Struct { props, required };
                return node;
            }
            FieldKind::Object
        }
        _ => FieldKind::Any,
    };
    node.shape = Shape::Leaf(kind);
    node
}

/// Combine what the outer schema says (description, default, secret flag) with the unwrapped
/// inner schema.
fn merge_outer(outer: Node, mut inner: Node, nullable: bool) -> Node {
    inner.secret |= outer.secret;
    inner.nullable |= nullable || outer.nullable;
    if outer.description.is_some() {
        inner.description = outer.description;
    }
    if outer.default.is_some() {
        inner.default = outer.default;
    }
    inner
}

fn collect_fields(
    node: &Node,
    path: &mut Vec<String>,
    secret: bool,
    default: Option<&Value>,
    out: &mut Vec<Field>,
) {
    match &node.shape {
        Shape::Struct { props, .. } => {
            for (name, child) in props {
                path.push(name.clone());
                // A struct's default supplies defaults for its fields' prompts.
                let inherited = default.and_then(|d| d.get(name));
                let own = child.default.as_ref().or(inherited);
                collect_fields(child, path, secret || child.secret, own, out);
                path.pop();
            }
        }
        Shape::Leaf(kind) => out.push(Field {
            path: path.clone(),
            kind: kind.clone(),
            secret: secret || node.secret,
            description: node.description.clone(),
            default: default.cloned(),
            nullable: node.nullable,
            minimum: node.minimum,
            maximum: node.maximum,
        }),
    }
}

fn fill(node: &Node, value: &mut Map<String, Value>) {
    let Shape::Struct { props, required } = &node.shape else {
        return;
    };
    for (name, child) in props {
        match value.get_mut(name) {
            Some(Value::Object(inner)) => fill(child, inner),
            Some(_) => {}
            None => {
                if let Some(default) = &child.default {
                    let mut default = default.clone();
                    if let Value::Object(inner) = &mut default {
                        fill(child, inner);
                    }
                    value.insert(name.clone(), default);
                } else if required.contains(name) && matches!(child.shape, Shape::Struct { .. }) {
                    let mut inner = Map::new();
                    fill(child, &mut inner);
                    value.insert(name.clone(), Value::Object(inner));
                }
            }
        }
    }
}

fn missing(
    node: &Node,
    value: &Map<String, Value>,
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let Shape::Struct { props, required } = &node.shape else {
        return;
    };
    for (name, child) in props {
        path.push(name.clone());
        match (value.get(name), &child.shape) {
            (Some(Value::Object(inner)), Shape::Struct { .. }) => missing(child, inner, path, out),
            (Some(_), _) => {}
            (None, Shape::Struct { .. }) if required.contains(name) => {
                missing(child, &Map::new(), path, out)
            }
            (None, Shape::Leaf(_)) if required.contains(name) => out.push(path.clone()),
            (None, _) => {}
        }
        path.pop();
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_struct(
    node: &Node,
    value: &Map<String, Value>,
    path: &mut Vec<String>,
    out: &mut Vec<crate::Problem>,
) {
    let Shape::Struct { props, .. } = &node.shape else {
        return;
    };
    for (name, child) in props {
        let Some(v) = value.get(name) else { continue };
        path.push(name.clone());
        check(child, v, path, out);
        path.pop();
    }
}

fn check(node: &Node, v: &Value, path: &mut Vec<String>, out: &mut Vec<crate::Problem>) {
    let mut problem = |expected: String, found: String| {
        out.push(crate::Problem {
            path: path.join("."),
            expected,
            found,
        })
    };
    if v.is_null() {
        if !node.nullable {
            let expected = match &node.shape {
                Shape::Struct { .. } => "an object".to_owned(),
                Shape::Leaf(kind) => kind.expected(),
            };
            problem(expected, "null".into());
        }
        return;
    }
    match &node.shape {
        Shape::Struct { .. } => match v {
            Value::Object(inner) => check_struct(node, inner, path, out),
            other => problem("an object".into(), json_type(other).into()),
        },
        Shape::Leaf(kind) => {
            let ok = match kind {
                FieldKind::String => v.is_string(),
                FieldKind::Integer => v.is_i64() || v.is_u64(),
                FieldKind::Number => v.is_number(),
                FieldKind::Boolean => v.is_boolean(),
                FieldKind::Enum(values) => values.contains(v),
                FieldKind::Array => v.is_array(),
                FieldKind::Object => v.is_object(),
                FieldKind::Any => true,
            };
            if !ok {
                let found = match kind {
                    // Naming the wrong enum value could reveal a secret; say what it is not.
                    FieldKind::Enum(_) => format!("{} that is not one of them", json_type(v)),
                    _ => json_type(v).to_owned(),
                };
                problem(kind.expected(), found);
                return;
            }
            if let Some(n) = v.as_f64() {
                if let Some(min) = node.minimum
                    && n < min
                {
                    problem(format!("at least {min}"), "a smaller number".into());
                } else if let Some(max) = node.maximum
                    && n > max
                {
                    problem(format!("at most {max}"), "a larger number".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        /// Quick.
        Fast,
        Slow,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    struct Db {
        /// Host name.
        #[serde(default = "localhost")]
        host: String,
        port: u16,
        #[schemars(extend("x-secret" = true))]
        password: String,
    }

    fn localhost() -> String {
        "localhost".into()
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    struct App {
        database: Db,
        replica: Option<Db>,
        mode: Mode,
        #[schemars(extend("writeOnly" = true))]
        token: String,
        tags: Vec<String>,
        ratio: Option<f64>,
    }

    fn schema() -> ConfigSchema {
        ConfigSchema::of::<App>("app").expect("schema")
    }

    #[test]
    fn fields_are_typed_and_flagged() {
        let s = schema();
        let by = |p: &str| {
            s.fields()
                .iter()
                .find(|f| f.dotted() == p)
                .unwrap_or_else(|| panic!("no field {p}"))
                .clone()
        };
        assert_eq!(by("database.port").kind, FieldKind::Integer);
        assert_eq!(by("database.port").maximum, Some(65535.0));
        assert!(by("database.password").secret);
        assert!(by("token").secret, "writeOnly marks a secret");
        assert!(!by("database.host").secret);
        assert_eq!(by("database.host").default, Some(json!("localhost")));
        assert_eq!(
            by("database.host").description.as_deref(),
            Some("Host name.")
        );
        // schemars lists undocumented variants before documented ones; the set is what counts.
        let FieldKind::Enum(mut modes) = by("mode").kind else {
            panic!("mode is an enum");
        };
        modes.sort_by_key(|v| v.to_string());
        assert_eq!(modes, [json!("fast"), json!("slow")]);
        assert!(by("replica.port").nullable || by("replica.port").kind == FieldKind::Integer);
        assert!(by("ratio").nullable);
        assert_eq!(by("ratio").kind, FieldKind::Number);
        assert_eq!(by("tags").kind, FieldKind::Array);
    }

    #[test]
    fn defaults_then_missing_lists_required_leaves_only() {
        let s = schema();
        let mut v = Map::new();
        s.fill_defaults(&mut v);
        assert_eq!(v["database"]["host"], json!("localhost"));
        let missing: Vec<String> = s.missing(&v).iter().map(|f| f.dotted()).collect();
        // `replica` is optional: absent means none, so its fields are not missing.
        assert_eq!(
            missing,
            [
                "database.password",
                "database.port",
                "mode",
                "tags",
                "token"
            ]
        );

        // A present optional struct must be complete.
        let mut v = json!({"replica": {"port": 1}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        s.fill_defaults(&mut v);
        let missing: Vec<String> = s.missing(&v).iter().map(|f| f.dotted()).collect();
        assert!(
            missing.contains(&"replica.password".to_owned()),
            "{missing:?}"
        );
        assert!(!missing.contains(&"replica.host".to_owned()), "{missing:?}");
    }

    #[test]
    fn problems_name_path_and_type_but_never_the_value() {
        let s = schema();
        let v = json!({
            "database": {"port": 70000, "password": 12345},
            "mode": "turbo",
            "tags": "not-a-list",
            "ratio": null,
        });
        let problems = s.problems(v.as_object().unwrap_or(&Map::new()));
        let text = format!("{problems:?}");
        assert!(
            text.contains("database.port") && text.contains("at most 65535"),
            "{text}"
        );
        assert!(
            text.contains("database.password") && text.contains("a string"),
            "{text}"
        );
        assert!(text.contains("one of: ") && text.contains("fast"), "{text}");
        assert!(text.contains("tags"), "{text}");
        assert!(!text.contains("turbo") && !text.contains("12345"), "{text}");
        assert!(
            !text.contains("ratio"),
            "null is fine for an Option: {text}"
        );
    }
}
