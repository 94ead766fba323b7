//! What a checker found, in a shape any report can draw without knowing the
//! checker: a few facts, how many cases of each anomaly, and tables whose
//! cells say what they hold (an op of the history, a line of a node's log,
//! an anomaly's name, a value, lines of text).
//!
//! A checker describes its own evidence here, so a new checker adds no
//! drawing code anywhere: the report draws every [`Evidence`] the same way.
//! It knows nothing of HTML, hosts or the report; the report knows nothing
//! of the checker.
//!
//! Part of results.json's schema (a checker's `evidence`): renaming or
//! removing a field here bumps `report::results::SCHEMA_VERSION`.
//!
//! ```json
//! {"facts": [{"name": "reads checked", "value": "120"}],
//!  "counts": {"bad-read": 2},
//!  "tables": [{"title": "Reads outside what the adds allow",
//!              "columns": ["read", "value"],
//!              "rows": [[{"op": {"index": 7}}, {"text": "4"}]],
//!              "total": 2, "what": "bad reads"}]}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Rows a table keeps; the ones past it are counted in its `total` only.
pub const ROWS_MAX: usize = 64;

/// What a checker found beyond its verdict and summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// Short facts, in order: ("reads checked", "120").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<Fact>,
    /// Cases of each anomaly found, by the anomaly's name (all of them:
    /// tables may show only the first few).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub name: String,
    pub value: String,
}

/// Rows of cells under a title. `rows` holds the first few of `total`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Table {
    /// What the table shows, in a line (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Column headings (none: no heading row).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Rows in all, the ones not kept included.
    pub total: usize,
    /// What a row is, plural, for "… and 3 more lost elements".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub what: String,
}

/// One cell of a table: what it holds says how it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Words.
    Text(String),
    /// Data, shown as written (monospace): a value, balances, a log line.
    Code(String),
    /// An op of the history, by index, with its time when the checker knows
    /// it (else the reader takes the history's).
    Op {
        index: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_ns: Option<u64>,
    },
    /// A node's log (`nodes/<node>/node.log`), at a 1-based line when given.
    LogLine {
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
    },
    /// An anomaly's name.
    Chip(String),
    /// Lines of text kept together, such as the end of a log.
    Lines(Vec<String>),
}

impl Evidence {
    pub fn new() -> Evidence {
        Evidence::default()
    }

    /// Adds the fact `name: value`.
    pub fn fact(mut self, name: &str, value: impl ToString) -> Evidence {
        self.facts.push(Fact {
            name: name.to_string(),
            value: value.to_string(),
        });
        self
    }

    /// Counts `n` cases of `anomaly` (nothing when `n` is 0).
    pub fn count(mut self, anomaly: &str, n: usize) -> Evidence {
        if n > 0 {
            *self.counts.entry(anomaly.to_string()).or_default() += n;
        }
        self
    }

    /// Adds `table`, unless it has nothing in it.
    pub fn table(mut self, table: Table) -> Evidence {
        if table.total > 0 {
            self.tables.push(table);
        }
        self
    }

    /// Cases of `anomaly` counted (`None` when none).
    pub fn count_of(&self, anomaly: &str) -> Option<usize> {
        self.counts.get(anomaly).copied().filter(|n| *n > 0)
    }

    pub fn is_empty(&self) -> bool {
        self.facts.is_empty() && self.counts.is_empty() && self.tables.is_empty()
    }
}

impl Table {
    /// An empty table titled `title` with these column headings.
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            ..Table::default()
        }
    }

    /// Adds a row (kept while fewer than [`ROWS_MAX`] are; counted always).
    pub fn row(mut self, cells: Vec<Cell>) -> Table {
        debug_assert!(
            self.columns.is_empty() || cells.len() == self.columns.len(),
            "a row has a cell per column"
        );
        if self.rows.len() < ROWS_MAX {
            self.rows.push(cells);
        }
        self.total += 1;
        self
    }

    /// Adds a row per item.
    pub fn rows<T>(
        self,
        items: impl IntoIterator<Item = T>,
        cells: impl Fn(T) -> Vec<Cell>,
    ) -> Table {
        items.into_iter().fold(self, |t, item| t.row(cells(item)))
    }

    /// There are `total` rows in all, of which the checker kept the ones
    /// added; a row is one of `what` ("lost elements").
    pub fn of(mut self, total: usize, what: &str) -> Table {
        self.total = self.total.max(total);
        self.what = what.to_string();
        self
    }

    /// Rows not kept here, for "… and N more".
    pub fn more(&self) -> usize {
        self.total.saturating_sub(self.rows.len())
    }
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    pub fn code(s: impl Into<String>) -> Cell {
        Cell::Code(s.into())
    }

    /// A JSON value as data: a string without its quotes, anything else as
    /// compact JSON.
    pub fn value(v: &Value) -> Cell {
        Cell::Code(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// History op `index`, at `time_ns` when known.
    pub fn op(index: u64, time_ns: Option<u64>) -> Cell {
        Cell::Op { index, time_ns }
    }

    /// Line `line` (1-based) of `node`'s log.
    pub fn log_line(node: &str, line: usize) -> Cell {
        Cell::LogLine {
            node: node.to_string(),
            line: Some(line),
        }
    }

    /// `node`'s log.
    pub fn log(node: &str) -> Cell {
        Cell::LogLine {
            node: node.to_string(),
            line: None,
        }
    }

    pub fn chip(anomaly: &str) -> Cell {
        Cell::Chip(anomaly.to_string())
    }

    pub fn lines(lines: &[String]) -> Cell {
        Cell::Lines(lines.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evidence_is_written_readably_and_read_back() {
        let e = Evidence::new()
            .fact("reads checked", 3)
            .count("bad-read", 2)
            .count("lost", 0)
            .table(
                Table::new("Bad reads", &["read", "value", "where"])
                    .row(vec![
                        Cell::op(7, Some(5)),
                        Cell::value(&json!("x")),
                        Cell::log_line("n1", 2),
                    ])
                    .of(2, "bad reads"),
            )
            .table(Table::new("Nothing", &["a"]));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({
                "facts": [{"name": "reads checked", "value": "3"}],
                "counts": {"bad-read": 2},
                "tables": [{"title": "Bad reads", "columns": ["read", "value", "where"],
                    "rows": [[{"op": {"index": 7, "time_ns": 5}}, {"code": "x"},
                              {"log_line": {"node": "n1", "line": 2}}]],
                    "total": 2, "what": "bad reads"}]
            }),
            "a table with no row is left out; so is a count of 0"
        );
        assert_eq!(serde_json::from_value::<Evidence>(v).unwrap(), e);
        assert_eq!(e.tables[0].more(), 1);
        assert_eq!(
            (e.count_of("bad-read"), e.count_of("lost")),
            (Some(2), None)
        );
        assert_eq!(
            serde_json::from_value::<Evidence>(json!({})).unwrap(),
            Evidence::new()
        );
        assert!(serde_json::from_value::<Evidence>(json!({"tables": 3})).is_err());
    }

    #[test]
    fn a_table_keeps_at_most_rows_max_rows_and_counts_them_all() {
        let t = Table::new("", &[]).rows(0..ROWS_MAX as u64 + 5, |i| vec![Cell::op(i, None)]);
        assert_eq!(
            (t.rows.len(), t.total, t.more()),
            (ROWS_MAX, ROWS_MAX + 5, 5)
        );
    }
}
