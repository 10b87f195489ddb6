//! The readers behind the one seam: Zeek logs and JSON lines give the same table a CSV file
//! gives, are told apart by their content (a misleading name or gzip changes nothing), and
//! bad files end in one error naming the file, the line and, where there is one, the column.

mod common;

use std::io::Write;

use common::{one_error_line, run, score, stderr, train, write};
use dagmm_tui::data::table::MISSING_LEVEL;
use dagmm_tui::data::{read_table, ColumnKind, Format, RawTable, ReadOptions};

fn read(path: &std::path::Path) -> RawTable {
    read_table(path, &ReadOptions::default(), None).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads `path` with missing cells taking the mean and the columns `ignore` left out.
fn read_filling(path: &std::path::Path, ignore: &[&str]) -> RawTable {
    let opts = ReadOptions {
        missing: Some(dagmm_tui::data::MissingPolicy::Mean),
        ignore: ignore.iter().map(|c| c.to_string()).collect(),
        ..ReadOptions::default()
    };
    read_table(path, &opts, None).unwrap_or_else(|e| panic!("{e}"))
}

fn error(path: &std::path::Path) -> String {
    read_table(path, &ReadOptions::default(), None)
        .expect_err("the file is malformed")
        .to_string()
}

/// A Zeek conn.log-like file with `rows` data rows (row 3 leaves its numbers unset).
fn zeek_log(rows: usize) -> String {
    let mut text = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n\
         #fields\tts\tuid\tproto\tduration\torig_bytes\tlocal_orig\ttunnel_parents\n\
         #types\ttime\tstring\tenum\tinterval\tcount\tbool\tset[string]\n",
    );
    for i in 0..rows {
        let (duration, bytes) = if i == 2 {
            ("-".to_string(), "-".to_string())
        } else {
            (format!("{}.5", i % 7), (100 + i * 13 % 50).to_string())
        };
        let proto = ["tcp", "udp", "(empty)"][i % 3];
        let local = if i % 2 == 0 { "T" } else { "F" };
        text += &format!(
            "{}.{i:06}\tC{i:08}\t{proto}\t{duration}\t{bytes}\t{local}\t(empty)\n",
            1_700_000_000 + i
        );
    }
    text + "#close\t2023-11-15-21-59-58\n"
}

fn column(table: &RawTable, name: &str) -> Vec<f32> {
    let c = table
        .numeric_columns
        .iter()
        .position(|n| n == name)
        .unwrap();
    let w = table.numeric_columns.len();
    table.numeric.chunks(w).map(|row| row[c]).collect()
}

#[test]
fn a_zeek_log_reads_its_types_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    // The name says CSV: the content decides.
    let path = write(dir.path(), "conn.csv", zeek_log(120).as_bytes());
    let table = read(&path);
    assert!(
        matches!(table.format, Format::Zeek(_)),
        "{:?}",
        table.format
    );
    assert_eq!(table.len(), 120, "the #close line is not a row");
    let kind = |name| table.schema.kind_of(name).unwrap();
    assert_eq!(kind("ts"), ColumnKind::Ignored, "time is kept out");
    assert_eq!(kind("uid"), ColumnKind::Ignored, "a unique id is dropped");
    assert_eq!(
        kind("tunnel_parents"),
        ColumnKind::Ignored,
        "sets are dropped"
    );
    assert_eq!(kind("duration"), ColumnKind::Numeric);
    assert_eq!(kind("local_orig"), ColumnKind::Numeric, "bool is 0/1");
    assert_eq!(kind("proto"), ColumnKind::Categorical);
    let notes = table.notes.join("\n");
    for expected in [
        "'ts' is a timestamp",
        "'uid' dropped",
        "'tunnel_parents' holds set",
    ] {
        assert!(notes.contains(expected), "{expected} in:\n{notes}");
    }
    assert!(
        notes.contains("2 missing cells in 1 rows") && notes.contains("default for Zeek"),
        "unset fields take the mean by default, with a note:\n{notes}"
    );
    let local = column(&table, "local_orig");
    assert_eq!(&local[..4], &[1.0, 0.0, 1.0, 0.0]);
    assert!(column(&table, "duration")[2].is_nan(), "'-' is missing");
    assert_eq!(column(&table, "duration")[1], 1.5);
    let proto = table
        .categorical_columns
        .iter()
        .position(|c| c == "proto")
        .unwrap();
    let width = table.categorical_columns.len();
    let level = table.categorical[2 * width + proto];
    assert_ne!(
        level, MISSING_LEVEL,
        "(empty) is a value, not a missing one"
    );
    assert_eq!(table.levels[proto][level as usize], "(empty)");
    assert_eq!(table.rows[0].line, 8, "rows keep their line in the file");
}

#[test]
fn a_gzipped_zeek_log_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "conn.log", zeek_log(60).as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(zeek_log(60).as_bytes()).unwrap();
    let packed = write(dir.path(), "conn.log.gz", &gz.finish().unwrap());
    let (a, b) = (read(&plain), read(&packed));
    assert_eq!(a.schema, b.schema);
    assert_eq!(a.numeric.len(), b.numeric.len());
    assert!(a
        .numeric
        .iter()
        .zip(&b.numeric)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn malformed_zeek_logs_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let no_fields = zeek_log(5).replace("#fields", "#fieldz");
    let e = error(&write(dir.path(), "nofields.log", no_fields.as_bytes()));
    assert!(e.contains("nofields.log:8") && e.contains("#fields"), "{e}");
    let short_row = zeek_log(5).replacen("\tC00000003\t", "\t", 1);
    let e = error(&write(dir.path(), "short.log", short_row.as_bytes()));
    assert!(
        e.contains("short.log:11") && e.contains("6 fields") && e.contains("7"),
        "{e}"
    );
    let types = zeek_log(5).replace("\tset[string]\n", "\n");
    let e = error(&write(dir.path(), "types.log", types.as_bytes()));
    assert!(
        e.contains("types.log:7") && e.contains("6 types for 7"),
        "{e}"
    );
    let text_count = zeek_log(5).replacen("\t113\t", "\tlots\t", 1);
    let e = error(&write(dir.path(), "count.log", text_count.as_bytes()));
    assert!(
        e.contains("count.log:9") && e.contains("column 'orig_bytes'") && e.contains("\"lots\""),
        "{e}"
    );
}

/// JSON lines with nesting, nulls, booleans, arrays and a key that comes late.
fn json_lines(rows: usize) -> String {
    (0..rows)
        .map(|i| {
            let late = if i >= 3 { format!(", \"late\": {i}") } else { String::new() };
            format!(
                "{{\"timestamp\": \"2024-01-01T00:00:{:02}Z\", \"src\": {{\"port\": {}, \"ip\": \"10.0.0.{}\"}}, \
                 \"bytes\": {}, \"alert\": {}, \"note\": null, \"tags\": [\"a\", \"b\"]{late}}}",
                i % 60,
                1000 + i,
                i % 4,
                i * 10,
                i % 2 == 0
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn json_lines_flatten_to_dotted_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "eve.json", json_lines(40).as_bytes());
    let table = read_filling(&path, &[]);
    assert!(matches!(table.format, Format::JsonLines(_)));
    let names: Vec<&str> = table
        .schema
        .columns
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "timestamp",
            "src.port",
            "src.ip",
            "bytes",
            "alert",
            "note",
            "tags",
            "late"
        ],
        "keys in order of first appearance, nested ones dotted"
    );
    let kind = |name| table.schema.kind_of(name).unwrap();
    assert_eq!(kind("timestamp"), ColumnKind::Ignored);
    assert_eq!(kind("tags"), ColumnKind::Ignored);
    assert_eq!(kind("src.port"), ColumnKind::Numeric);
    assert_eq!(kind("src.ip"), ColumnKind::Categorical);
    assert_eq!(kind("alert"), ColumnKind::Numeric, "booleans are 0/1");
    assert_eq!(column(&table, "alert")[..3], [1.0, 0.0, 1.0]);
    assert_eq!(column(&table, "src.port")[5], 1005.0);
    assert!(
        column(&table, "late")[0].is_nan(),
        "a key a line lacks is missing"
    );
    assert_eq!(column(&table, "late")[3], 3.0);
    let notes = table.notes.join("\n");
    assert!(
        notes.contains("'tags' holds arrays (line 1): dropped"),
        "{notes}"
    );
    assert!(notes.contains("'timestamp' is a timestamp"), "{notes}");
    assert_eq!(table.rows[4].line, 5);
}

#[test]
fn malformed_json_lines_name_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = json_lines(6).lines().map(str::to_string).collect();
    lines[3] = "[1, 2, 3]".into();
    let e = error(&write(
        dir.path(),
        "array.json",
        lines.join("\n").as_bytes(),
    ));
    assert!(
        e.contains("array.json:4") && e.contains("JSON object") && e.contains("an array"),
        "{e}"
    );
    lines[3] = "{\"bytes\": 5,".into();
    let e = error(&write(dir.path(), "cut.json", lines.join("\n").as_bytes()));
    assert!(
        e.contains("cut.json:4") && e.contains("not valid JSON"),
        "{e}"
    );
    lines[3] = "{\"bytes\": \"many\"}".into();
    let e = error(&write(
        dir.path(),
        "mixed.json",
        lines.join("\n").as_bytes(),
    ));
    assert!(
        e.contains("mixed.json:4")
            && e.contains("column 'bytes'")
            && e.contains("mixed types")
            && e.contains("\"many\"")
            && e.contains("a number on line 1"),
        "{e}"
    );
    let e = error(&write(
        dir.path(),
        "binary.json",
        b"{\"a\": 1}\n{\"a\": \xff}\n",
    ));
    assert!(e.contains("binary.json:2") && e.contains("UTF-8"), "{e}");
}

#[test]
fn delimiter_is_refused_for_a_format_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "conn.log", zeek_log(20).as_bytes());
    let line = one_error_line(&train(
        &path,
        &dir.path().join("out"),
        &["--delimiter", ";"],
    ));
    assert!(
        line.contains("--delimiter is for CSV files") && line.contains("Zeek"),
        "{line}"
    );
}

#[test]
fn json_lines_train_score_and_export_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "eve.json", json_lines(200).as_bytes());
    let out = dir.path().join("model");
    let trained = train(
        &path,
        &out,
        &["--epochs", "2", "--members", "1", "--missing", "mean"],
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
    // New data with keys in another order and one the model never saw: read by name.
    let reordered: String = json_lines(200)
        .lines()
        .map(|l| {
            let mut v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(l).unwrap();
            let bytes = v.remove("bytes").unwrap();
            v.insert("extra".into(), "x".into());
            v.insert("bytes".into(), bytes);
            serde_json::to_string(&v).unwrap() + "\n"
        })
        .collect();
    let other = write(dir.path(), "again.json", reordered.as_bytes());
    let a = score(&out, &path, &[]);
    let b = score(&out, &other, &[]);
    assert!(a.status.success() && b.status.success(), "{}", stderr(&b));
    assert_eq!(a.stdout, b.stdout, "the same rows score the same");
    let scored = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(scored.lines().count(), 201);
    // An export carries the original records, flattened, whatever the format.
    let table = read_filling(&path, &[]);
    let rows = [dagmm_tui::triage::ExportRow {
        record: 4,
        scores: vec![dagmm_tui::triage::RankedScore {
            score: 2.5,
            rank: 1,
        }],
        mark: None,
        why: Vec::new(),
    }];
    let exported = dir.path().join("top.csv");
    let safety = dagmm_tui::triage::CellSafety::Defuse;
    dagmm_tui::triage::export(&path, &table.format, &["dagmm"], &rows, &exported, safety).unwrap();
    let text = std::fs::read_to_string(&exported).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "timestamp,src.port,src.ip,bytes,alert,note,tags,late,score,rank,mark"
    );
    assert_eq!(
        lines.next().unwrap(),
        "2024-01-01T00:00:03Z,1003,10.0.0.3,30,0,,,3,2.5,1,"
    );
    let help = run(&["train", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Zeek"));
}

/// A Parquet file with one column of each kind a user's extract has; `rows` rows, every
/// fifth `amount` null. Written in small row groups so that reading crosses them.
fn parquet_file(dir: &std::path::Path, name: &str, rows: usize) -> std::path::PathBuf {
    use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
    use arrow_array::types::Int32Type;
    use arrow_array::{
        ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
        TimestampMicrosecondArray,
    };
    let amount: Float64Array = (0..rows)
        .map(|i| (i % 5 != 0).then_some(i as f64 * 0.1))
        .collect();
    let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
    (0..rows).for_each(|i| {
        dictionary.append_value(["GET", "POST", "PUT"][i % 3]);
    });
    let mut tags = ListBuilder::new(arrow_array::builder::Int64Builder::new());
    (0..rows).for_each(|i| {
        tags.values().append_value(i as i64);
        tags.append(true);
    });
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "id",
            std::sync::Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        ),
        ("amount", std::sync::Arc::new(amount)),
        (
            "ratio",
            std::sync::Arc::new(Float32Array::from_iter_values(
                (0..rows).map(|i| i as f32 / 3.0),
            )),
        ),
        (
            "flag",
            std::sync::Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0)))),
        ),
        (
            "host",
            std::sync::Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("h{}", i % 4)),
            )),
        ),
        ("method", std::sync::Arc::new(dictionary.finish())),
        (
            "seen",
            std::sync::Arc::new(TimestampMicrosecondArray::from_iter_values(
                (0..rows).map(|i| 1_700_000_000_000_000 + i as i64 * 1_500_000),
            )),
        ),
        ("tags", std::sync::Arc::new(tags.finish())),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let path = dir.join(name);
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_size(64)
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

#[test]
fn parquet_columns_take_their_kinds_from_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet_file(dir.path(), "extract.data", 300);
    let table = read_filling(&path, &["tags"]);
    assert!(
        matches!(table.format, Format::Parquet(_)),
        "sniffed by its magic bytes"
    );
    assert_eq!(table.len(), 300, "every row group read");
    let kind = |name| table.schema.kind_of(name).unwrap();
    assert_eq!(kind("id"), ColumnKind::Numeric, "integers are numbers");
    assert_eq!(kind("host"), ColumnKind::Categorical);
    assert_eq!(
        kind("method"),
        ColumnKind::Categorical,
        "dictionary columns by their values"
    );
    assert_eq!(kind("flag"), ColumnKind::Numeric);
    assert_eq!(kind("seen"), ColumnKind::Numeric);
    assert_eq!(column(&table, "flag")[..3], [1.0, 0.0, 1.0]);
    assert!(column(&table, "amount")[0].is_nan() && column(&table, "amount")[5].is_nan());
    assert_eq!(column(&table, "amount")[7], (7.0f64 * 0.1) as f32);
    assert_eq!(
        column(&table, "ratio")[2],
        2.0f32 / 3.0,
        "f32 values exactly"
    );
    assert_eq!(column(&table, "seen")[2], 1_700_000_003.0);
    let method = table
        .categorical_columns
        .iter()
        .position(|c| c == "method")
        .unwrap();
    assert_eq!(table.levels[method], ["GET", "POST", "PUT"]);
    let notes = table.notes.join("\n");
    assert!(
        notes.contains("'seen' (Parquet type Timestamp") && notes.contains("seconds"),
        "{notes}"
    );
    assert!(notes.contains("60 missing cells in 60 rows"), "{notes}");
}

#[test]
fn malformed_parquet_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet_file(dir.path(), "good.parquet", 300);
    // A nested column is refused by name unless it is left out.
    let e = error(&path);
    assert!(
        e.contains("column 'tags'") && e.contains("nested") && e.contains("--ignore tags"),
        "{e}"
    );
    let bytes = std::fs::read(&path).unwrap();
    let cut = write(dir.path(), "cut.parquet", &bytes[..bytes.len() / 2]);
    let e = error(&cut);
    assert!(e.contains("cut.parquet") && e.contains("Parquet"), "{e}");
    let e = one_error_line(&train(&cut, &dir.path().join("out"), &[]));
    assert!(e.contains("cut.parquet") && e.contains("truncated"), "{e}");
}

#[test]
fn parquet_trains_and_scores_like_the_same_rows_in_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet_file(dir.path(), "extract.parquet", 300);
    let table = read_filling(&path, &["tags"]);
    // The same rows as CSV, written from the records the Parquet reader gives.
    let wanted: std::collections::BTreeSet<u64> = (1..=300).collect();
    let (header, records) = dagmm_tui::data::read_records(&path, &table.format, &wanted).unwrap();
    let mut csv_text = header.join(",") + "\n";
    for n in 1..=300u64 {
        csv_text += &(records[&n].iter().collect::<Vec<_>>().join(",") + "\n");
    }
    let csv_path = write(dir.path(), "extract.csv", csv_text.as_bytes());
    let args = [
        "--epochs",
        "2",
        "--members",
        "1",
        "--missing",
        "mean",
        "--ignore",
        "tags",
    ];
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (data, out) in [(&path, &a), (&csv_path, &b)] {
        let trained = train(data, out, &args);
        assert!(trained.status.success(), "{}", stderr(&trained));
    }
    let scores = |d: &std::path::Path| std::fs::read_to_string(d.join("scores.csv")).unwrap();
    assert_eq!(scores(&a), scores(&b), "same rows, same seed: same scores");
    let rescored = score(&a, &csv_path, &[]);
    let again = score(&a, &path, &[]);
    assert!(
        rescored.status.success() && again.status.success(),
        "{}",
        stderr(&again)
    );
    assert_eq!(rescored.stdout, again.stdout);
}

/// Flipped bits anywhere in a Parquet file end in the table (damage the format cannot see)
/// or in an error naming the file: the decoder's own panics are contained.
#[test]
fn damaged_parquet_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet_file(dir.path(), "good.parquet", 300);
    let bytes = std::fs::read(&path).unwrap();
    let opts = ReadOptions {
        missing: Some(dagmm_tui::data::MissingPolicy::Mean),
        ignore: vec!["tags".into()],
        ..ReadOptions::default()
    };
    let mut seed = 12345u64;
    let mut errors = 0;
    for case in 0..300 {
        let mut damaged = bytes.clone();
        for _ in 0..(1 + case % 8) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % damaged.len();
            damaged[at] ^= 1 << ((seed >> 20) % 8);
        }
        let path = write(dir.path(), "damaged.parquet", &damaged);
        let outcome = std::panic::catch_unwind(|| read_table(&path, &opts, None));
        match outcome.expect("case {case}: a panic escaped the reader") {
            Ok(table) => assert_eq!(table.len(), 300, "case {case}"),
            Err(e) => {
                errors += 1;
                assert!(
                    e.to_string().starts_with(&path.display().to_string()),
                    "{e}"
                );
            }
        }
    }
    assert!(errors > 100, "most damage is seen: {errors} of 300");
}

/// A file larger than `--sample`: the kept rows are a uniform draw over the whole file
/// (a chi-square test over its twentieths, fixed seed), intact, in file order; `train`
/// still scores every row.
#[test]
fn a_sample_is_drawn_uniformly_in_one_pass_and_scores_cover_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 20_000usize;
    let mut text = String::from("x,y,kind\n");
    for i in 1..=rows {
        text += &format!("{i},{},{}\n", (i * 7919) % 1000, ["a", "b", "c"][i % 3]);
    }
    let path = write(dir.path(), "big.csv", text.as_bytes());
    let opts = ReadOptions {
        sample: Some(2_000),
        ..ReadOptions::default()
    };
    let table = read_table(&path, &opts, None).unwrap();
    assert_eq!(table.len(), 2_000);
    assert_eq!(table.sampled_from, Some(rows as u64));
    let numbers: Vec<u64> = table.rows.iter().map(|r| r.number).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "file order, no repeats"
    );
    // Every kept row still holds its own cells after the reservoir's moves.
    let x = column(&table, "x");
    let y = column(&table, "y");
    for (i, &n) in numbers.iter().enumerate() {
        assert_eq!(x[i], n as f32);
        assert_eq!(y[i], ((n as usize * 7919) % 1000) as f32);
        assert_eq!(table.rows[i].line, n + 1);
    }
    let mut bins = [0f64; 20];
    numbers
        .iter()
        .for_each(|&n| bins[((n - 1) as usize * 20) / rows] += 1.0);
    let chi2: f64 = bins.iter().map(|&o| (o - 100.0).powi(2) / 100.0).sum();
    assert!(
        chi2 < 43.8,
        "chi-square {chi2:.1} over 19 degrees of freedom (p < 0.001): {bins:?}"
    );
    assert!(table
        .notes
        .iter()
        .any(|n| n.contains("uniform sample of 2000")));
    // Every row fits the default budget: a small file is read whole, as before.
    let whole = read_table(&path, &ReadOptions::default(), None).unwrap();
    assert_eq!((whole.len(), whole.sampled_from), (rows, None));

    let out = dir.path().join("model");
    let trained = train(
        &path,
        &out,
        &["--sample", "2000", "--epochs", "1", "--members", "1"],
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
    assert!(
        stderr(&trained).contains("on 2000 rows"),
        "{}",
        stderr(&trained)
    );
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(scores.lines().count(), rows + 1, "every row is scored");
    let ranks: std::collections::BTreeSet<u64> = scores
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(ranks.len(), rows, "ranks over every row");
}
