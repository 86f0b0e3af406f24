//! A config type's JSON schema, reduced to what the manager needs: a tree of structs and typed
//! leaf fields.
//!
//! schemars produces a full JSON Schema; this module normalises it once (nullable `Option`s
//! unwrapped, `$ref`s resolved, string enums collected from `enum`/`const`/`oneOf`) so that env
//! parsing, default filling, missing-field detection, validation and prompting all walk the same
//! simple tree instead of re-interpreting JSON Schema each time.
//!
//! A stored schema is written by any teammate, so it is untrusted input: each `$defs` entry is
//! expanded once and shared, the expansion is bounded ([`MAX_SCHEMA_DEPTH`],
//! [`MAX_SCHEMA_FIELDS`], [`MAX_SCHEMA_BYTES`]), and a definition that refers to itself (a
//! recursive type) is an error naming it — a recursive type has no finite list of fields to
//! type, prompt for or mask, and treating it as an opaque JSON value would stop masking any
//! secret field inside it. Give such a field a JSON value type (`serde_json::Value`) instead.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::ConfigError;

/// How deeply a schema may nest: structs in structs, `anyOf`/`allOf` wrappers and `$ref` hops
/// each count one level. Deeper is an error (a stored schema is untrusted input: this bounds the
/// recursion).
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// How many nodes (leaf fields and the structs holding them) a schema may expand to, every use
/// of a definition counted. More is an error: a definition used three times in itself, ten
/// levels deep, would otherwise expand to 3^10 fields.
pub const MAX_SCHEMA_FIELDS: usize = 10_000;

/// The largest schema accepted, as serialised JSON (1 MiB; schemars' schemas of real config
/// types are a few KiB).
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;

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
    ///
    /// A schema over [`MAX_SCHEMA_BYTES`], [`MAX_SCHEMA_DEPTH`] or [`MAX_SCHEMA_FIELDS`], or with a
    /// recursive definition, is [`ConfigError::UnsupportedSchema`] naming the key and the limit.
    pub fn from_json(key: &str, schema: &Value) -> Result<Self, ConfigError> {
        let unsupported = |reason: String| ConfigError::UnsupportedSchema {
            key: key.to_owned(),
            reason,
        };
        if !fits_in(schema, MAX_SCHEMA_BYTES) {
            return Err(unsupported(format!(
                "it is larger than {MAX_SCHEMA_BYTES} bytes, the most a config schema may be"
            )));
        }
        let empty = Map::new();
        let defs = schema
            .get("$defs")
            .or_else(|| schema.get("definitions"))
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut expander = Expander {
            defs,
            memo: HashMap::new(),
            active: Vec::new(),
            nodes: 0,
            deepest: 0,
        };
        let root = expander
            .build(schema, 0)
            .map_err(|limit| unsupported(limit.reason()))?;
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
    for _ in 0..MAX_SCHEMA_DEPTH {
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

/// Why a schema cannot be expanded (see [`ConfigSchema::from_json`]).
enum Limit {
    Depth,
    Fields,
    Cycle(Vec<String>),
}

impl Limit {
    fn reason(&self) -> String {
        match self {
            Self::Depth => format!(
                "its fields nest deeper than {MAX_SCHEMA_DEPTH} levels (structs, anyOf/allOf and \
                 $ref each count one), the most a config schema may have"
            ),
            Self::Fields => format!(
                "it expands to more than {MAX_SCHEMA_FIELDS} fields (each use of a definition \
                 counted), the most a config schema may have"
            ),
            Self::Cycle(chain) => {
                let names: Vec<String> = chain.iter().map(|n| shown(n)).collect();
                format!(
                    "definition {} refers to itself ({}); a recursive type has no finite list \
                     of fields: give the recursive field a JSON value type (serde_json::Value) \
                     or break the cycle",
                    names.first().map_or("?", String::as_str),
                    names.join(" -> ")
                )
            }
        }
    }
}

/// A definition name from a stored schema, quoted and cut short for a message.
fn shown(name: &str) -> String {
    let cut: String = name.chars().take(64).collect();
    format!("{cut:?}")
}

/// Whether `value` serialises to at most `limit` bytes (counted, stopping at the limit).
fn fits_in(value: &Value, limit: usize) -> bool {
    struct Counter {
        left: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.left = self
                .left
                .checked_sub(buf.len())
                .ok_or_else(|| std::io::Error::other("over the limit"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter { left: limit }, value).is_ok()
}

/// A definition expanded once: its node, how many nodes it holds and how many levels it adds.
struct Expanded {
    node: Node,
    nodes: usize,
    height: usize,
}

/// Expands a schema into a [`Node`] tree within the limits, each definition once.
struct Expander<'a> {
    defs: &'a Map<String, Value>,
    memo: HashMap<String, Expanded>,
    /// The definitions being expanded now, outermost first: a `$ref` to one is a cycle.
    active: Vec<String>,
    /// Nodes in the tree so far (every use of a definition counted).
    nodes: usize,
    /// The deepest level reached so far.
    deepest: usize,
}

impl Expander<'_> {
    fn count(&mut self, nodes: usize) -> Result<(), Limit> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_SCHEMA_FIELDS {
            return Err(Limit::Fields);
        }
        Ok(())
    }

    fn reach(&mut self, depth: usize) -> Result<(), Limit> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(Limit::Depth);
        }
        self.deepest = self.deepest.max(depth);
        Ok(())
    }

    /// The node of definition `name` (`$ref`'d at `depth`), expanded on first use.
    fn definition(&mut self, name: &str, target: &Value, depth: usize) -> Result<Node, Limit> {
        if let Some(at) = self.active.iter().position(|n| n == name) {
            let mut chain = self.active[at..].to_vec();
            chain.push(name.to_owned());
            return Err(Limit::Cycle(chain));
        }
        if let Some((nodes, height)) = self.memo.get(name).map(|d| (d.nodes, d.height)) {
            // Within the limits first, so an over-budget use costs no copy.
            self.reach(depth + height)?;
            self.count(nodes)?;
            if let Some(done) = self.memo.get(name) {
                return Ok(done.node.clone());
            }
        }
        let (nodes_before, deepest_before) = (self.nodes, self.deepest);
        self.deepest = depth;
        self.active.push(name.to_owned());
        let node = self.build(target, depth)?;
        self.active.pop();
        let expanded = Expanded {
            node: node.clone(),
            nodes: self.nodes - nodes_before,
            height: self.deepest - depth,
        };
        self.deepest = self.deepest.max(deepest_before);
        self.memo.insert(name.to_owned(), expanded);
        Ok(node)
    }

    fn build(&mut self, schema: &Value, depth: usize) -> Result<Node, Limit> {
        self.reach(depth)?;
        let flag = |v: &Value, name: &str| v.get(name).and_then(Value::as_bool) == Some(true);
        let own = |v: &Value| Node {
            secret: flag(v, "x-secret") || flag(v, "writeOnly"),
            description: v
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            default: v.get("default").cloned(),
            nullable: false,
            minimum: v.get("minimum").and_then(Value::as_f64),
            maximum: v.get("maximum").and_then(Value::as_f64),
            shape: Shape::Leaf(FieldKind::Any),
        };
        // A `$ref` to a definition: its (shared) node, with what the referring schema adds.
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference
                .rsplit_once('/')
                .map_or(reference, |(_, name)| name);
            if let Some(target) = self.defs.get(name) {
                let inner = self.definition(name, target, depth + 1)?;
                return Ok(merge_outer(own(schema), inner, false));
            }
        }
        self.count(1)?;
        let mut node = own(schema);

        // `Option<T>`: `anyOf: [T, {type: null}]` (or oneOf) — unwrap to T, remember nullability.
        for combinator in ["anyOf", "oneOf"] {
            if let Some(alts) = schema.get(combinator).and_then(Value::as_array) {
                let non_null: Vec<&Value> = alts.iter().filter(|a| !is_null_schema(a)).collect();
                let has_null = non_null.len() != alts.len();
                if non_null.len() == 1 {
                    let inner = self.build(non_null[0], depth + 1)?;
                    return Ok(merge_outer(node, inner, has_null));
                }
                // A unit enum with documented variants: every alternative is a const/enum.
                let mut values = Vec::new();
                let all_consts = non_null.iter().all(|a| {
                    let a = resolve(a, self.defs);
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
                return Ok(node);
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array)
            && all.len() == 1
        {
            let inner = self.build(&all[0], depth + 1)?;
            return Ok(merge_outer(node, inner, false));
        }

        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            node.nullable = values.iter().any(Value::is_null);
            node.shape = Shape::Leaf(FieldKind::Enum(
                values.iter().filter(|v| !v.is_null()).cloned().collect(),
            ));
            return Ok(node);
        }
        if let Some(c) = schema.get("const") {
            node.shape = Shape::Leaf(FieldKind::Enum(vec![c.clone()]));
            return Ok(node);
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
                    let mut built = Vec::with_capacity(props.len());
                    for (name, s) in props {
                        built.push((name.clone(), self.build(s, depth + 1)?));
                    }
                    node.shape = Shape::Struct {
                        props: built,
                        required,
                    };
                    return Ok(node);
                }
                FieldKind::Object
            }
            _ => FieldKind::Any,
        };
        node.shape = Shape::Leaf(kind);
        Ok(node)
    }
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

    /// `ConfigSchema::from_json` of `schema` on its own thread: its result, or a failed test
    /// when it has not returned after 10 s (the watchdog, not a timing assertion).
    fn parse_with_watchdog(schema: Value) -> Result<ConfigSchema, ConfigError> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(ConfigSchema::from_json("app", &schema));
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the schema parse did not return within 10 s")
    }

    /// Issue 20 finding 3: the 236-byte schema whose one definition has three properties that
    /// `$ref` the definition itself (exponential before: 5.8 GB and more than 60 s).
    #[test]
    fn a_self_referencing_definition_is_refused_at_once() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "App",
            "$ref": "#/$defs/n",
            "$defs": {"n": {"type": "object", "properties": {
                "a": {"$ref": "#/$defs/n"},
                "b": {"$ref": "#/$defs/n"},
                "c": {"$ref": "#/$defs/n"}
            }}}
        });
        assert!(
            schema.to_string().len() < 240,
            "{}",
            schema.to_string().len()
        );
        let err = parse_with_watchdog(schema).expect_err("a cycle");
        let text = err.to_string();
        assert!(
            text.contains("\"app\"") && text.contains("refers to itself"),
            "{text}"
        );
    }

    /// Definitions that multiply without a cycle, nest too deep, or a schema too large: each an
    /// error naming the key and the limit.
    #[test]
    fn schemas_over_the_limits_are_refused_naming_the_limit() {
        // 12 definitions, each with three properties of the next: 3^12 fields.
        let mut defs = Map::new();
        for i in 0..12 {
            let next = json!({"$ref": format!("#/$defs/d{}", i + 1)});
            defs.insert(
                format!("d{i}"),
                json!({"type": "object", "properties": {"a": next, "b": next, "c": next}}),
            );
        }
        defs.insert("d12".into(), json!({"type": "string"}));
        let err = parse_with_watchdog(json!({"$ref": "#/$defs/d0", "$defs": defs}))
            .expect_err("too many fields");
        let text = err.to_string();
        assert!(
            text.contains("\"app\"") && text.contains(&MAX_SCHEMA_FIELDS.to_string()),
            "{text}"
        );

        // A chain of 40 nested structs.
        let mut leaf = json!({"type": "string"});
        for _ in 0..40 {
            leaf = json!({"type": "object", "properties": {"x": leaf}});
        }
        let err = parse_with_watchdog(leaf).expect_err("too deep");
        let text = err.to_string();
        assert!(
            text.contains("\"app\"") && text.contains(&MAX_SCHEMA_DEPTH.to_string()),
            "{text}"
        );

        let big = "x".repeat(MAX_SCHEMA_BYTES);
        let err =
            parse_with_watchdog(json!({"type": "object", "description": big, "properties": {}}))
                .expect_err("too large");
        assert!(
            err.to_string().contains(&MAX_SCHEMA_BYTES.to_string()),
            "{err}"
        );
    }

    /// A definition used in several places is expanded once and shared, and its flags and the
    /// referring property's description both apply.
    #[test]
    fn a_shared_definition_types_every_place_it_is_used() {
        let schema = json!({
            "type": "object",
            "properties": {
                "primary": {"$ref": "#/$defs/db", "description": "Main."},
                "replica": {"anyOf": [{"$ref": "#/$defs/db"}, {"type": "null"}]}
            },
            "$defs": {"db": {"type": "object", "properties": {
                "port": {"type": "integer", "maximum": 9},
                "password": {"type": "string", "x-secret": true}
            }}}
        });
        let s = parse_with_watchdog(schema).expect("valid");
        let dotted: Vec<String> = s.fields().iter().map(Field::dotted).collect();
        assert_eq!(
            dotted,
            [
                "primary.password",
                "primary.port",
                "replica.password",
                "replica.port"
            ]
        );
        assert!(s.fields()[0].secret && s.fields()[2].secret);
        assert_eq!(s.fields()[3].maximum, Some(9.0));
    }
}
