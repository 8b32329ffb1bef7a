//! Output helpers: aligned tables for people, NDJSON for scripts.

use std::io::Write;

use eventstore_client::RecordedEvent;

/// Output options shared by the commands that print records.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutArgs {
    /// One JSON object per line (NDJSON) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A table printed with aligned columns.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table.
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>, out: &mut dyn Write| -> std::io::Result<()> {
            let n = cells.len();
            for (i, (cell, w)) in cells.into_iter().zip(&widths).enumerate() {
                if i + 1 == n {
                    write!(out, "{cell}")?;
                } else {
                    write!(out, "{cell:<w$}  ")?;
                }
            }
            writeln!(out)
        };
        line(self.header.clone(), out)?;
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect(), out)?;
        }
        Ok(())
    }
}

/// Cuts text to `max` characters, with an ellipsis.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// One line about an event, for people.
pub fn event_line(e: &RecordedEvent) -> String {
    format!(
        "{:>8}  {}/{}@{}  {}  {}",
        e.position
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into()),
        e.stream_type,
        e.stream_id,
        e.revision,
        e.event_type,
        cut(e.payload.get(), 100)
    )
}

/// Writes a value as one JSON line.
pub fn json_line(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(vec!["A", "LONGER"]);
        t.row(vec!["xyz".into(), "1".into()]);
        let mut out = Vec::new();
        t.print(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A    LONGER\nxyz  1\n");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
