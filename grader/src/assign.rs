//! The assignment problem: pair rows with columns so the summed weight is greatest, in
//! polynomial time (the Hungarian method, O(n²·m) for n rows and m ≥ n columns).

/// The greatest total weight of a pairing of `rows` with `cols` (each used at most once; a row
/// may stay unpaired, earning nothing). `w[r][c]` is the weight of pairing row `r` with
/// column `c`; only non-negative weights are meaningful.
pub fn max_total(w: &[Vec<u64>], rows: &[usize], cols: &[usize]) -> u64 {
    let n = rows.len();
    if n == 0 || cols.is_empty() {
        return 0;
    }
    // Minimise cost = top − weight over n rows and m real columns plus n zero-weight columns
    // that stand for "unpaired".
    let m = cols.len() + n;
    let weight = |r: usize, c: usize| -> u64 {
        if c < cols.len() {
            w[rows[r]][cols[c]]
        } else {
            0
        }
    };
    let top = (0..n)
        .flat_map(|r| (0..cols.len()).map(move |c| (r, c)))
        .map(|(r, c)| weight(r, c))
        .max()
        .unwrap_or(0);
    let cost = |r: usize, c: usize| -> i128 { i128::from(top) - i128::from(weight(r, c)) };
    // Potentials and the column each row ends up in, 1-based with 0 as the virtual start.
    let mut u = vec![0i128; n + 1];
    let mut v = vec![0i128; m + 1];
    let mut owner = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0;
        let mut minv = vec![i128::MAX; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let mut delta = i128::MAX;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=m)
        .filter(|&j| owner[j] != 0)
        .map(|j| weight(owner[j] - 1, j - 1))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_heaviest_pairing_not_the_greedy_one() {
        // Greedy would pair row 0 with column 0 (5) and leave row 1 with 0.
        let w = vec![vec![5, 4], vec![4, 0]];
        assert_eq!(max_total(&w, &[0, 1], &[0, 1]), 8);
        assert_eq!(max_total(&w, &[0, 1], &[1]), 4);
        assert_eq!(max_total(&w, &[], &[0, 1]), 0);
    }

    #[test]
    fn more_rows_than_columns_leave_rows_unpaired() {
        let w = vec![vec![3], vec![7], vec![1]];
        assert_eq!(max_total(&w, &[0, 1, 2], &[0]), 7);
    }
}
