//! The command line: `dagmm-tui DATA` (workbench), `train`, `score`, `eval`. Every size and
//! hyperparameter is a flag and may also come from a TOML `--config` file (flags win).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::data::source::parse_delimiter;
use crate::data::{read_table, Encoder, MissingPolicy, ReadOptions, ScaleKind};
use crate::eval::{run_protocol, ProtocolOptions, RunReport, Summary};
use crate::model::{DagmmConfig, Preset};
use crate::train::{
    checkpoint, default_epochs, DataContext, ModelSource, SessionPlan, TrainConfig, TrainEvent,
    WorkerOptions,
};
use crate::triage::{write_scores, CellSafety};
use crate::ui::text::{json_safe, visible};
use crate::ui::WorkbenchOptions;

/// `eprintln!` for lines that may carry untrusted text (file names, cells, column names):
/// control, bidi and zero-width characters are printed as visible escapes, never raw.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", visible(&format!($($arg)*)))
    };
}

/// Unsupervised anomaly detection on tabular data with DAGMM.
#[derive(Debug, Parser)]
#[command(name = "dagmm-tui", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// CSV file (.csv or .csv.gz) to open in the workbench.
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub workbench: WorkbenchArgs,
    #[command(flatten)]
    pub data_args: DataArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Write CSV text cells exactly as read, even ones a spreadsheet would run as formulas
    /// (by default cells starting with = + - @ tab or CR get a leading ').
    #[arg(long, global = true)]
    pub raw_cells: bool,
}

/// Options of the terminal workbench (`dagmm-tui DATA`).
#[derive(Debug, Args, Clone)]
pub struct WorkbenchArgs {
    /// Open a checkpoint written by `train` (or `s` in the workbench) instead of training.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Load the data but wait for space before training.
    #[arg(long)]
    pub paused: bool,
    /// Rescore every row every N epochs (default: about ten times per run) and at the end.
    #[arg(long)]
    pub rescore_every: Option<usize>,
    /// Share of rows flagged at start, in percent (+/- change it).
    #[arg(long, default_value_t = 5.0)]
    pub flag_percent: f64,
    /// Label value counted as the anomaly class in live metrics (default: the rarest value).
    #[arg(long)]
    pub anomaly: Option<String>,
    /// Colour theme: dark, light, high-contrast, monochrome, or a path to a .toml theme.
    #[arg(long)]
    pub theme: Option<String>,
    /// Draw charts with half blocks instead of braille (for fonts without braille).
    #[arg(long)]
    pub no_braille: bool,
    /// Keymap file laid over the defaults (default: ~/.config/dagmm-tui/keymap.toml).
    #[arg(long)]
    pub keymap: Option<PathBuf>,
    /// Where marks, checkpoints and the log are kept (default: ~/.local/state/dagmm-tui).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// The headless commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a DAGMM on DATA; write the checkpoint and scores.csv into --out.
    Train(TrainCommand),
    /// Score DATA with a saved model (streaming: memory stays bounded).
    Score(ScoreCommand),
    /// The paper's protocol: 50/50 split, train on normal rows, P/R/F1/AUROC/AUPRC per run.
    Eval(EvalCommand),
}

/// How the CSV is read and encoded.
#[derive(Debug, Args, Clone, Default)]
pub struct DataArgs {
    /// Field delimiter (one character or 'tab'); sniffed from the header when absent.
    #[arg(long, value_parser = parse_delimiter, global = true)]
    pub delimiter: Option<u8>,
    /// Column kept out of the features and used for metrics.
    #[arg(long, global = true)]
    pub label: Option<String>,
    /// Columns to drop (comma separated).
    #[arg(long, value_delimiter = ',', global = true)]
    pub ignore: Vec<String>,
    /// Columns to treat as categorical even if numeric-looking (comma separated).
    #[arg(long, value_delimiter = ',', global = true)]
    pub categorical: Vec<String>,
    /// What to do with missing values (empty, NA, NaN, ?, null).
    #[arg(long, value_enum, default_value_t = MissingPolicy::Error, global = true)]
    pub missing: MissingPolicy,
    /// Numeric scaling, fitted on the training rows.
    #[arg(long, value_enum, default_value_t = ScaleKind::Minmax, global = true)]
    pub scale: ScaleKind,
}

impl DataArgs {
    fn read_options(&self) -> ReadOptions {
        ReadOptions {
            delimiter: self.delimiter,
            label: self.label.clone(),
            ignore: self.ignore.clone(),
            categorical: self.categorical.clone(),
            missing: self.missing,
        }
    }
}

/// Architecture and training settings; each may also be set in the `--config` file.
#[derive(Debug, Args, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SettingsArgs {
    /// TOML file with any of these settings (keys as the long flag names, e.g. `lambda-cov = 0.01`).
    #[arg(long, global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Architecture preset: `auto` (rule from the input width) or the paper's `kddcup`.
    #[arg(long, value_enum, global = true)]
    pub preset: Option<Preset>,
    /// Encoder hidden widths, comma separated (the decoder mirrors them).
    #[arg(long, value_delimiter = ',', global = true)]
    pub hidden: Option<Vec<usize>>,
    /// Latent code size (z_c).
    #[arg(long, global = true)]
    pub latent: Option<usize>,
    /// Mixture components K.
    #[arg(long, short = 'k', global = true)]
    pub components: Option<usize>,
    /// Estimation network hidden width.
    #[arg(long, global = true)]
    pub estimation_hidden: Option<usize>,
    /// Dropout in the estimation network.
    #[arg(long, global = true)]
    pub dropout: Option<f64>,
    /// λ1, weight of the sample energy.
    #[arg(long, global = true)]
    pub lambda_energy: Option<f64>,
    /// λ2, weight of the covariance penalty.
    #[arg(long, global = true)]
    pub lambda_cov: Option<f64>,
    /// ε added to covariance diagonals.
    #[arg(long, global = true)]
    pub cov_eps: Option<f64>,
    /// Training epochs (default: 20, more for small files so that training gets ≥ 2,000 steps).
    #[arg(long, global = true)]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, global = true)]
    pub batch: Option<usize>,
    /// Adam learning rate.
    #[arg(long, global = true)]
    pub lr: Option<f64>,
    /// Seed for weights, batches, dropout (and the split in eval).
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// Compute threads (default 1, leaving a core for reading and the UI; 2 gains little in training).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

impl SettingsArgs {
    /// Flags merged over the `--config` file.
    fn resolved(&self) -> Result<SettingsArgs> {
        let Some(path) = &self.config else {
            return Ok(self.clone());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: SettingsArgs = toml::from_str(&text)
            .with_context(|| format!("{}: invalid settings", path.display()))?;
        macro_rules! merge {
            ($($f:ident),*) => { SettingsArgs { config: None, $($f: self.$f.clone().or(file.$f),)* } };
        }
        Ok(merge!(
            preset,
            hidden,
            latent,
            components,
            estimation_hidden,
            dropout,
            lambda_energy,
            lambda_cov,
            cov_eps,
            epochs,
            batch,
            lr,
            seed,
            threads
        ))
    }

    fn model_for(&self, input: usize) -> DagmmConfig {
        let mut c = DagmmConfig::preset(self.preset.unwrap_or_default(), input);
        c.hidden = self.hidden.clone().unwrap_or(c.hidden);
        c.latent = self.latent.unwrap_or(c.latent);
        c.components = self.components.unwrap_or(c.components);
        c.estimation_hidden = self.estimation_hidden.unwrap_or(c.estimation_hidden);
        c.dropout = self.dropout.unwrap_or(c.dropout);
        c.lambda_energy = self.lambda_energy.unwrap_or(c.lambda_energy);
        c.lambda_cov = self.lambda_cov.unwrap_or(c.lambda_cov);
        c.cov_eps = self.cov_eps.unwrap_or(c.cov_eps);
        c
    }

    /// Training settings for about `rows` training rows (which sets the default epochs).
    fn train_config(&self, rows: usize) -> Result<TrainConfig> {
        let d = TrainConfig::default();
        let batch = self.batch.unwrap_or(d.batch);
        let config = TrainConfig {
            epochs: self.epochs.unwrap_or_else(|| default_epochs(rows, batch)),
            batch,
            lr: self.lr.unwrap_or(d.lr),
            seed: self.seed.unwrap_or(d.seed),
        };
        if config.batch < 2 {
            bail!("--batch must be at least 2");
        }
        if !(config.lr > 0.0 && config.lr.is_finite()) {
            bail!("--lr must be a positive number");
        }
        Ok(config)
    }

    fn apply_threads(&self) {
        // Fails only if a pool exists already (tests calling twice): keep the first.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads.unwrap_or(1).max(1))
            .build_global();
    }
}

/// `train` arguments.
#[derive(Debug, Args)]
pub struct TrainCommand {
    /// CSV file (.csv or .csv.gz).
    pub data: PathBuf,
    /// Directory for the checkpoint and scores.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Progress as JSON lines on stderr instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `score` arguments.
#[derive(Debug, Args)]
pub struct ScoreCommand {
    /// Checkpoint directory written by `train`.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV file to score.
    pub data: PathBuf,
    /// Output CSV (`row,energy[,label]`); standard output when absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `eval` arguments.
#[derive(Debug, Args)]
pub struct EvalCommand {
    /// CSV file with a label column.
    pub data: PathBuf,
    /// Label value of the anomaly class (e.g. `normal.` for KDDCUP).
    #[arg(long)]
    pub anomaly: String,
    /// Independent runs (seeds seed, seed+1, …).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Share of test rows to flag; default: the file's anomaly ratio.
    #[arg(long)]
    pub contamination: Option<f64>,
    /// Models per run, trained from different seeds, whose standardised energies are averaged
    /// (every member counts equally: no labels involved). 3 makes the typical run good.
    #[arg(long, default_value_t = 3)]
    pub restarts: usize,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Entry point for the binary: runs the command and turns errors into one line on stderr.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            tell!("error: {e:#}");
            1
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let settings = cli.settings.resolved()?;
    settings.apply_threads();
    let safety = if cli.raw_cells {
        CellSafety::Raw
    } else {
        CellSafety::Defuse
    };
    match cli.command {
        Some(Command::Train(cmd)) => train(&cmd, &cli.data_args, &settings, safety),
        Some(Command::Score(cmd)) => score(&cmd, safety),
        Some(Command::Eval(cmd)) => eval(&cmd, &cli.data_args, &settings),
        None => match cli.data {
            Some(data) => workbench(data, &cli.workbench, &cli.data_args, settings, safety),
            None => bail!("no data file given; try 'dagmm-tui --help'"),
        },
    }
}

fn workbench(
    data: PathBuf,
    args: &WorkbenchArgs,
    data_args: &DataArgs,
    settings: SettingsArgs,
    safety: CellSafety,
) -> Result<()> {
    if !data.is_file() {
        bail!("{}: no such file", data.display());
    }
    if !(0.0..=100.0).contains(&args.flag_percent) {
        bail!("--flag-percent must be between 0 and 100");
    }
    let rescore_every = args.rescore_every;
    if rescore_every == Some(0) {
        bail!("--rescore-every must be at least 1");
    }
    let model = match &args.model {
        Some(dir) => ModelSource::Checkpoint(dir.clone()),
        None => ModelSource::Train(Box::new(move |width, rows| {
            Ok((settings.model_for(width), settings.train_config(rows)?))
        })),
    };
    let plan = SessionPlan {
        data,
        read: data_args.read_options(),
        scale: data_args.scale,
        model,
        options: WorkerOptions {
            // 0: about ten times per run, decided once the epoch count is known.
            rescore_every: Some(rescore_every.unwrap_or(0)),
            start_paused: args.paused,
        },
    };
    crate::ui::run(
        plan,
        WorkbenchOptions {
            theme: args.theme.clone(),
            braille: !args.no_braille,
            keymap: args.keymap.clone(),
            state_dir: args
                .state_dir
                .clone()
                .unwrap_or_else(crate::ui::runtime::default_state_dir),
            anomaly: args.anomaly.clone(),
            contamination: args.flag_percent / 100.0,
            safety,
        },
    )
}

fn train(
    cmd: &TrainCommand,
    data_args: &DataArgs,
    settings: &SettingsArgs,
    safety: CellSafety,
) -> Result<()> {
    let read = data_args.read_options();
    let table = read_table(&cmd.data, &read, None)?;
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, notes) = Encoder::fit(&table, &all, data_args.scale)?;
    for note in table.notes.iter().chain(&notes) {
        tell!("note: {note}");
    }
    let model = settings.model_for(encoder.width());
    model.validate().map_err(anyhow::Error::msg)?;
    let train_config = settings.train_config(table.len())?;
    let matrix = Arc::new(encoder.transform(&table, &all).matrix);
    let worker = crate::train::spawn(
        model,
        train_config,
        matrix,
        DataContext {
            read: read.clone(),
            encoder: encoder.clone(),
        },
    );
    for event in worker.events.iter() {
        report_progress(&event, cmd.json);
    }
    let trained = worker
        .thread
        .join()
        .map_err(|_| anyhow::anyhow!("the training thread panicked"))??;
    checkpoint::save(&cmd.out, &trained.model, &trained.meta(&read, &encoder))?;
    let scores_path = cmd.out.join("scores.csv");
    let file = File::create(&scores_path)
        .with_context(|| format!("creating {}", scores_path.display()))?;
    write_scores(
        BufWriter::new(file),
        &table.rows,
        &trained.energies,
        table.labels.as_ref(),
        safety,
    )?;
    tell!(
        "wrote {} and the checkpoint in {}",
        scores_path.display(),
        cmd.out.display()
    );
    Ok(())
}

fn report_progress(event: &TrainEvent, json: bool) {
    if json {
        if let Some(value) = event_json(event) {
            tell!("{}", json_safe(&value.to_string()));
        }
        return;
    }
    match event {
        TrainEvent::Started { rows, features, epochs, .. } => {
            tell!("training on {rows} rows × {features} features for {epochs} epochs")
        }
        TrainEvent::Epoch {
            epoch,
            loss,
            phi,
            samples_per_sec,
            elapsed_secs,
        } => tell!(
            "epoch {epoch}: loss {:.5} (recon {:.5}, energy {:.4}, cov {:.4}) φ [{}] {:.0} samples/s, {:.1} s",
            loss.total,
            loss.reconstruction,
            loss.energy,
            loss.penalty,
            phi.iter().map(|p| format!("{p:.3}")).collect::<Vec<_>>().join(" "),
            samples_per_sec,
            elapsed_secs
        ),
        TrainEvent::Warning(w) => tell!("warning: {w}"),
        TrainEvent::Failed(e) => tell!("error: {e}"),
        _ => {}
    }
}

fn event_json(event: &TrainEvent) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match event {
        TrainEvent::Started {
            rows,
            features,
            epochs,
            steps_per_epoch,
            ..
        } => {
            json!({"event": "started", "rows": rows, "features": features, "epochs": epochs, "steps_per_epoch": steps_per_epoch})
        }
        TrainEvent::Epoch {
            epoch,
            loss,
            phi,
            samples_per_sec,
            elapsed_secs,
        } => {
            json!({"event": "epoch", "epoch": epoch, "reconstruction": loss.reconstruction, "energy": loss.energy,
            "penalty": loss.penalty, "total": loss.total, "phi": phi, "samples_per_sec": samples_per_sec,
            "elapsed_secs": elapsed_secs})
        }
        TrainEvent::Warning(w) => json!({"event": "warning", "message": w}),
        TrainEvent::Failed(e) => json!({"event": "failed", "message": e}),
        TrainEvent::Finished {
            epochs_done,
            stopped_early,
        } => {
            json!({"event": "finished", "epochs_done": epochs_done, "stopped_early": stopped_early})
        }
        _ => return None,
    })
}

fn score(cmd: &ScoreCommand, safety: CellSafety) -> Result<()> {
    let ck = checkpoint::load(&cmd.model)?;
    let gmm = ck.meta.gmm.factorise().map_err(anyhow::Error::msg)?;
    // Label text shown on a terminal is escaped like everything else on screen.
    let to_terminal = cmd.out.is_none() && std::io::stdout().is_terminal();
    let cell = |text: &str| {
        let text = safety.apply(text);
        if to_terminal {
            visible(&text).into_owned()
        } else {
            text.into_owned()
        }
    };
    let out: Box<dyn Write> = match &cmd.out {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = csv::Writer::from_writer(BufWriter::new(out));
    let mut header_written = false;
    let mut unseen = 0u64;
    let rows = crate::data::table::read_chunks(
        &cmd.data,
        &ck.meta.read,
        &ck.meta.encoder.schema,
        8192,
        |chunk| {
            if !header_written {
                let mut header = vec!["row".to_string(), "energy".to_string()];
                header.extend(chunk.labels.as_ref().map(|l| cell(&l.column)));
                writer.write_record(&header)?;
                header_written = true;
            }
            let all: Vec<usize> = (0..chunk.len()).collect();
            let encoded = ck.meta.encoder.transform(&chunk, &all);
            unseen += encoded.unseen_levels;
            let energies = ck.model.energies(&ck.dev, &encoded.matrix, &gmm);
            for (i, row) in chunk.rows.iter().enumerate() {
                let mut record = vec![row.number.to_string(), energies[i].to_string()];
                record.extend(chunk.labels.as_ref().map(|l| cell(l.name(i))));
                writer.write_record(&record)?;
            }
            Ok(())
        },
    )?;
    writer.flush()?;
    if unseen > 0 {
        tell!("warning: {unseen} categorical cells had a level not seen in training (encoded as all zeros)");
    }
    tell!("scored {rows} rows");
    Ok(())
}

fn eval(cmd: &EvalCommand, data_args: &DataArgs, settings: &SettingsArgs) -> Result<()> {
    if data_args.label.is_none() {
        bail!("eval needs --label COLUMN (and --anomaly VALUE)");
    }
    if cmd.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let table = read_table(&cmd.data, &data_args.read_options(), None)?;
    let opts = ProtocolOptions {
        anomaly: cmd.anomaly.clone(),
        runs: cmd.runs,
        contamination: cmd.contamination,
        scale: data_args.scale,
        // The training half: at most half the rows (its anomalies are left out too).
        train: settings.train_config(table.len() / 2)?,
        restarts: cmd.restarts,
    };
    let reports = run_protocol(
        &table,
        &opts,
        |w| settings.model_for(w),
        |line| tell!("{line}"),
    )?;
    let summary = Summary::of(&reports);
    if cmd.json {
        let value = serde_json::json!({
            "data": cmd.data.display().to_string(),
            "anomaly": cmd.anomaly,
            "train": opts.train,
            "runs": reports,
            "summary": summary,
        });
        println!("{}", json_safe(&serde_json::to_string_pretty(&value)?));
    } else {
        print_table(&reports, &summary);
    }
    Ok(())
}

fn print_table(reports: &[RunReport], summary: &Summary) {
    println!(
        "{:>4} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} | {:>9} {:>9} | {:>8} {:>8} {:>10}",
        "run",
        "seed",
        "P",
        "R",
        "F1",
        "AUROC",
        "AUPRC",
        "F1 (untr)",
        "AUROC (u)",
        "ratio",
        "train s",
        "samples/s"
    );
    for r in reports {
        println!(
            "{:>4} {:>6} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} | {:>9.4} {:>9.4} | {:>8.4} {:>8.1} {:>10.0}",
            r.run,
            r.seed,
            r.trained.precision,
            r.trained.recall,
            r.trained.f1,
            r.trained.auroc,
            r.trained.auprc,
            r.untrained.f1,
            r.untrained.auroc,
            r.test_anomaly_ratio,
            r.train_seconds,
            r.samples_per_sec
        );
    }
    let s = summary;
    for (name, pick) in [
        (
            "min",
            (|x: &crate::eval::Spread| x.min) as fn(&crate::eval::Spread) -> f64,
        ),
        ("median", |x| x.median),
        ("max", |x| x.max),
    ] {
        println!(
            "{:>11} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} | {:>9.4} {:>9.4} | {:>8} {:>8.1} {:>10.0}",
            name,
            pick(&s.precision),
            pick(&s.recall),
            pick(&s.f1),
            pick(&s.auroc),
            pick(&s.auprc),
            pick(&s.untrained_f1),
            pick(&s.untrained_auroc),
            "",
            pick(&s.train_seconds),
            pick(&s.samples_per_sec)
        );
    }
}
