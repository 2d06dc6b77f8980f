//! A plain text table for terminal output. Columns are at most 60
//! characters wide, a longer cell ends in `…`; the last column is never
//! cut (a failure reason is read whole).

pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count()).min(60);
                }
            }
        }
        let last = widths.len().saturating_sub(1);
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let c: String = if i == last || c.chars().count() <= *w {
                    c.to_string()
                } else {
                    c.chars().take(w.saturating_sub(1)).chain(['…']).collect()
                };
                s.push_str(&format!("{c:<w$}", w = *w));
                if i + 1 < widths.len() {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        out.push_str(&line(
            &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        ));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn long_cells_end_in_an_ellipsis_and_the_last_column_is_whole() {
        let mut t = Table::new(&["name", "outcome"]);
        let long = "x".repeat(80);
        let reason = format!("failed at step identity: {}", "because ".repeat(12));
        t.row(vec![long.clone(), reason.clone()]);
        let out = t.render();
        let row = out.lines().nth(2).unwrap();
        assert!(row.starts_with(&format!("{}…", "x".repeat(59))), "{row}");
        assert!(row.ends_with(reason.trim_end()), "{row}");
    }
}
