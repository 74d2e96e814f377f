//! Tables laid out as Go's `text/tabwriter` does for notary and docker (padding 4, spaces).
//!
//! Every cell but the last of a row is padded to its column's width plus the padding; the last
//! cell is written as it is, so an empty last cell leaves the padding of the one before it.

/// Spaces between columns.
pub const PADDING: usize = 4;

/// Lays out rows of cells; rows may have different lengths.
pub fn render<S: AsRef<str>>(rows: &[Vec<S>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        // The last cell of a row does not size its column.
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.as_ref().chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let cell = cell.as_ref();
            out.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] + PADDING - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// A header row and its underline, as notary prints them (`ROLE` over `----`).
pub fn header(names: &[&str]) -> Vec<Vec<String>> {
    vec![
        names.iter().map(|n| (*n).to_owned()).collect(),
        names
            .iter()
            .map(|n| "-".repeat(n.chars().count()))
            .collect(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_notary_list() {
        let mut rows = header(&["NAME", "DIGEST", "SIZE (BYTES)", "ROLE"]);
        rows.push(
            [
                "admin",
                "9f44d46c89f5315968cdc56713b7371a745c640e8e94dc02f0a15d2887082888",
                "423",
                "targets",
            ]
            .map(String::from)
            .to_vec(),
        );
        let expected = "NAME     DIGEST                                                              SIZE (BYTES)    ROLE\n\
                        ----     ------                                                              ------------    ----\n\
                        admin    9f44d46c89f5315968cdc56713b7371a745c640e8e94dc02f0a15d2887082888    423             targets\n";
        assert_eq!(render(&rows), expected);
    }

    #[test]
    fn an_empty_last_cell_keeps_the_padding() {
        let rows = vec![vec!["a", "b", "1"], vec!["", "cc", ""]];
        assert_eq!(render(&rows), "a    b     1\n     cc    \n");
    }
}
