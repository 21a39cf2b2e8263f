//! What the admin commands print for people: aligned columns under a header row, times as
//! UTC minutes (`2026-12-04 16:05 UTC`). Scripts take `--json` instead.

use sixmap_shared::UnixMicros;

/// A UTC time to the minute, `2026-12-04 16:05 UTC`; `-` for none.
pub fn utc_minute(at: Option<UnixMicros>) -> String {
    let Some(at) = at else {
        return "-".into();
    };
    let seconds = at.0.div_euclid(1_000_000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = crate::export::row::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60
    )
}

/// Rows of text cells under a header, each column as wide as its widest cell.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The header, then one line per row; two spaces between columns, none at a line's end.
    /// Control characters in cells are shown escaped, so a stored name cannot move the
    /// terminal's cursor.
    pub fn render(&self) -> String {
        let clean = |cell: &str| -> String {
            if cell.chars().any(char::is_control) {
                cell.escape_default().to_string()
            } else {
                cell.to_owned()
            }
        };
        let lines: Vec<Vec<String>> =
            std::iter::once(self.header.iter().map(|h| (*h).to_owned()).collect())
                .chain(
                    self.rows
                        .iter()
                        .map(|r| r.iter().map(|c| clean(c)).collect()),
                )
                .collect();
        let mut widths = vec![0; self.header.len()];
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in &lines {
            let mut text = String::new();
            for (i, (cell, width)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_minutes() {
        assert_eq!(utc_minute(None), "-");
        assert_eq!(utc_minute(Some(UnixMicros(0))), "1970-01-01 00:00 UTC");
        // 2026-12-04 16:05:59.999999 stays in its minute.
        let at = (20_791 * 86_400 + 16 * 3600 + 5 * 60 + 59) * 1_000_000 + 999_999;
        assert_eq!(utc_minute(Some(UnixMicros(at))), "2026-12-04 16:05 UTC");
        assert_eq!(utc_minute(Some(UnixMicros(-1))), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn columns_line_up_under_the_header() {
        let mut table = Table::new(&["ID", "NAME", "ROLE"]);
        table.row(vec!["a1".into(), "alice".into(), "admin".into()]);
        table.row(vec!["b2".into(), "bo\nb".into(), "-".into()]);
        assert_eq!(
            table.render(),
            "ID  NAME   ROLE\na1  alice  admin\nb2  bo\\nb  -\n"
        );
        assert_eq!(Table::new(&["ID"]).render(), "ID\n");
    }
}
