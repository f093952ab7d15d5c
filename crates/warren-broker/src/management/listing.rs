//! RabbitMQ's list query parameters: `sort=`/`sort_reverse=` and `columns=`
//! (dotted paths such as `queue_totals.messages` keep nested fields).

use axum::Json;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Query parameters of a request.
pub(crate) type Params = HashMap<String, String>;

/// Sort and trim a list as the query asks.
pub(crate) fn list(mut items: Vec<Value>, q: &Params) -> Json<Value> {
    if let Some(key) = q.get("sort").filter(|k| !k.is_empty()) {
        items.sort_by(|a, b| cmp(lookup(a, key), lookup(b, key)));
    }
    if q.get("sort_reverse").is_some_and(|v| v == "true") {
        items.reverse();
    }
    let items = items.into_iter().map(|v| columns(v, q)).collect();
    Json(Value::Array(items))
}

/// One object, trimmed as the query asks.
pub(crate) fn one(item: Value, q: &Params) -> Json<Value> {
    Json(columns(item, q))
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn cmp(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

fn columns(v: Value, q: &Params) -> Value {
    let Some(cols) = q.get("columns").filter(|c| !c.is_empty()) else {
        return v;
    };
    let mut out = Map::new();
    for path in cols.split(',') {
        if let Some(x) = lookup(&v, path) {
            insert(&mut out, path, x.clone());
        }
    }
    Value::Object(out)
}

fn insert(out: &mut Map<String, Value>, path: &str, x: Value) {
    match path.split_once('.') {
        None => {
            out.insert(path.to_owned(), x);
        }
        Some((head, rest)) => {
            let child = out
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = child {
                insert(m, rest, x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{list, Params};
    use serde_json::json;

    #[test]
    fn columns_keep_dotted_paths_and_sort_orders() {
        let q: Params = [("columns", "name,totals.n"), ("sort", "name")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        let items = vec![
            json!({"name": "b", "x": 1, "totals": {"n": 2, "m": 3}}),
            json!({"name": "a", "x": 1, "totals": {"n": 1}}),
        ];
        let out = list(items, &q).0;
        assert_eq!(
            out,
            json!([{"name": "a", "totals": {"n": 1}}, {"name": "b", "totals": {"n": 2}}])
        );
    }
}
