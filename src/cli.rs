//! The command line: `dagmm-tui DATA` (workbench), `train`, `score`, `eval`. Every size and
//! hyperparameter is a flag and may also come from a TOML `--config` file (flags win).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::data::source::parse_delimiter;
use crate::data::{read_table, Encoder, MissingPolicy, ReadOptions, ScaleKind};
use crate::eval::{
    run_protocol, FileReport, Overall, Protocol, ProtocolOptions, RunReport, Spread, Summary,
};
use crate::files::StagedFile;
use crate::model::{DagmmConfig, DetectorConfig, DetectorKind, EgbadConfig, EgbadScore, Preset};
use crate::text::{json_safe, visible, visible_lines};
use crate::train::{
    checkpoint, default_epochs, DataContext, ModelSource, Rescoring, SessionPlan, TrainConfig,
    TrainEvent, WorkerOptions, DEFAULT_MEMBERS,
};
use crate::triage::{write_scores, CellSafety};
use crate::ui::WorkbenchOptions;

/// `eprintln!` for lines that may carry untrusted text (file names, cells, column names):
/// control, bidi and zero-width characters are printed as visible escapes, never raw; new
/// lines (in a TOML error, say) stay new lines.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", visible_lines(&format!($($arg)*)))
    };
}

/// Unsupervised anomaly detection on tabular data with DAGMM and EGBAD.
#[derive(Debug, Parser)]
#[command(name = "dagmm-tui", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Data file to open in the workbench: CSV, Zeek log, JSON lines (each possibly gzipped)
    /// or Parquet, told apart by content.
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub workbench: WorkbenchArgs,
    #[command(flatten)]
    pub data_args: DataArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How CSV outputs (scores, exports) write text cells.
#[derive(Debug, Args, Clone, Default)]
pub struct OutputArgs {
    /// Write CSV text cells exactly as read, even ones a spreadsheet would run as formulas
    /// (by default cells starting with = + - @ tab or CR get a leading ').
    #[arg(long)]
    pub raw_cells: bool,
}

impl OutputArgs {
    fn safety(&self) -> CellSafety {
        if self.raw_cells {
            CellSafety::Raw
        } else {
            CellSafety::Defuse
        }
    }
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
    /// Detection quality against a label: the paper's protocol or the unsupervised one, with
    /// the untrained ensemble and an IsolationForest reference; several files or a directory.
    Eval(EvalCommand),
    /// Throughput on the KDDCUP shape: training and scoring samples/s, loading + encoding
    /// of the KDDCUP 10 % file, peak memory (--threads sets the compute threads).
    Bench(BenchCommand),
}

/// `bench` arguments.
#[derive(Debug, Args)]
pub struct BenchCommand {
    /// The detector to time: DAGMM (the paper's KDDCUP network, batch 1024) or EGBAD (the
    /// authors' KDDCUP network, batch 256).
    #[arg(long, value_enum, default_value_t = DetectorKind::Dagmm)]
    pub detector: DetectorKind,
    /// Synthetic KDDCUP-shaped rows to train and score on.
    #[arg(long, default_value_t = 200_000)]
    pub rows: usize,
    /// Train and score on this CSV's encoded rows instead (all columns as features).
    #[arg(long = "data")]
    pub data_file: Option<PathBuf>,
    /// Timed repeats of each measurement after a warm-up (at least 3).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Files whose loading and encoding is timed, in the same run (comma separated: e.g. a
    /// CSV file and its Parquet conversion).
    #[arg(long, value_delimiter = ',', default_value = crate::bench::KDDCUP_FILE)]
    pub load: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Compute threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// How the CSV is read and encoded.
#[derive(Debug, Args, Clone, Default)]
pub struct DataArgs {
    /// Field delimiter (one character or 'tab'); sniffed from the header when absent.
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Column kept out of the features and used for metrics.
    #[arg(long)]
    pub label: Option<String>,
    /// Columns to drop (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// Columns to treat as categorical even if numeric-looking (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// What to do with missing values (empty, NA, NaN, ?, null; a Zeek log's unset `-`):
    /// `error` by default, `mean` for Zeek logs and Parquet, where an unset field or a null is routine.
    #[arg(long, value_enum)]
    pub missing: Option<MissingPolicy>,
    /// Numeric scaling, fitted on the training rows.
    #[arg(long, value_enum, default_value_t = ScaleKind::Minmax)]
    pub scale: ScaleKind,
    /// Train on a uniform sample of this many rows when the file has more (drawn in one
    /// pass); default: as many as fit an eighth of the free memory (64–512 MiB, at least
    /// 100,000 rows); 0: every row. Scores always cover every row.
    #[arg(long)]
    pub sample: Option<usize>,
}

impl DataArgs {
    fn read_options(&self) -> ReadOptions {
        ReadOptions {
            delimiter: self.delimiter,
            label: self.label.clone(),
            ignore: self.ignore.clone(),
            categorical: self.categorical.clone(),
            missing: self.missing,
            sample: self.sample,
        }
    }
}

/// Architecture and training settings; each may also be set in the `--config` file.
#[derive(Debug, Args, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SettingsArgs {
    /// TOML file with any of these settings (keys as the long flag names, e.g. `lambda-cov = 0.01`).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Detector: `dagmm` (density of a latent code) or `egbad` (adversarial
    /// reconstruction); `dagmm,egbad` trains both side by side in the workbench.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub detector: Option<Vec<DetectorKind>>,
    /// Preset: `auto` (rule from the input width) or the papers' `kddcup` (DAGMM: its
    /// KDDCUP network and 20 epochs; EGBAD: scored by L_D alone, 6 epochs; both tuned on
    /// KDDCUP, see README).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Encoder hidden widths, comma separated (DAGMM: the decoder mirrors them; EGBAD: the
    /// first is its encoder's hidden width).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Latent code size (DAGMM: z_c; EGBAD: z).
    #[arg(long)]
    pub latent: Option<usize>,
    /// Mixture components K.
    #[arg(long, short = 'k')]
    pub components: Option<usize>,
    /// Estimation network hidden width.
    #[arg(long)]
    pub estimation_hidden: Option<usize>,
    /// Dropout (DAGMM: in the estimation network; EGBAD: in the discriminator).
    #[arg(long)]
    pub dropout: Option<f64>,
    /// λ1, weight of the sample energy.
    #[arg(long)]
    pub lambda_energy: Option<f64>,
    /// λ2, weight of the covariance penalty.
    #[arg(long)]
    pub lambda_cov: Option<f64>,
    /// ε added to covariance diagonals.
    #[arg(long)]
    pub cov_eps: Option<f64>,
    /// DAGMM: share of each batch's unknown rows suspected by their energy and left out of
    /// the mixture fit and the loss after a warm-up, and of the final fit (default 0.2; 0:
    /// the paper's objective).
    #[arg(long)]
    pub trim: Option<f64>,
    /// DAGMM: keep each member's state (after any epoch, or untrained) whose scores split
    /// most clearly into a bulk and a far group (`true`, default) or the last (`false`).
    #[arg(long)]
    pub select_length: Option<bool>,
    /// EGBAD: weight α of the reconstruction term in the score (default 0.9).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// EGBAD: weight of the cycle term mean |x − G(E(x))| in E and G's loss (default 1;
    /// 0: EGBAD as published, as `--preset kddcup` trains).
    #[arg(long)]
    pub cycle: Option<f64>,
    /// EGBAD: the discriminator term of the score, `xent` (cross-entropy) or `fm`
    /// (feature matching).
    #[arg(long, value_enum)]
    pub score: Option<EgbadScore>,
    /// Training epochs per member (default: the fewest that give --min-steps steps).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Optimisation steps per member the default epoch count aims at (default 200; ignored
    /// with --epochs).
    #[arg(long)]
    pub min_steps: Option<usize>,
    /// Mini-batch size.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed for weights, batches, dropout (and the split in eval).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ensemble members (default 5), each trained from its own seed; their calibrated
    /// scores are averaged (no labels involved). 1 = a single model.
    #[arg(long)]
    pub members: Option<usize>,
    /// Compute threads: a training step splits its batch over them, scoring splits its rows
    /// (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl SettingsArgs {
    /// Flags merged over the `--config` file, every number checked.
    fn resolved(&self) -> Result<SettingsArgs> {
        let resolved = self.merged_with_config()?;
        resolved.check_ranges()?;
        Ok(resolved)
    }

    /// An error naming the first setting that is not a finite number in its range: a NaN
    /// or a huge weight would drop every training step and still write a checkpoint.
    fn check_ranges(&self) -> Result<()> {
        /// (flag, value, lowest, highest, whether the lowest is allowed)
        type Range = (&'static str, Option<f64>, f64, f64, bool);
        let ranges: [Range; 8] = [
            ("--dropout", self.dropout, 0.0, 0.99, true),
            ("--lambda-energy", self.lambda_energy, 0.0, 1e3, true),
            ("--lambda-cov", self.lambda_cov, 0.0, 1e3, true),
            ("--cov-eps", self.cov_eps, 0.0, 1.0, true),
            ("--trim", self.trim, 0.0, 0.5, true),
            ("--alpha", self.alpha, 0.0, 1.0, true),
            ("--cycle", self.cycle, 0.0, 1e3, true),
            ("--lr", self.lr, 0.0, 1.0, false),
        ];
        for (flag, value, lo, hi, lo_allowed) in ranges {
            let Some(v) = value else { continue };
            let above_lo = if lo_allowed { v >= lo } else { v > lo };
            if !(v.is_finite() && above_lo && v <= hi) {
                let open = if lo_allowed { "[" } else { "(" };
                bail!("{flag} must be a finite number in {open}{lo}, {hi}], got {v}");
            }
        }
        let counts = [
            ("--members", self.members),
            ("--threads", self.threads),
            ("--components", self.components),
            ("--latent", self.latent),
            ("--estimation-hidden", self.estimation_hidden),
        ];
        for (flag, value) in counts {
            if value == Some(0) {
                bail!("{flag} must be at least 1");
            }
        }
        if self.batch.is_some_and(|b| b < 2) {
            bail!("--batch must be at least 2");
        }
        if self.hidden.as_ref().is_some_and(|h| h.contains(&0)) {
            bail!("--hidden widths must be at least 1");
        }
        Ok(())
    }

    fn merged_with_config(&self) -> Result<SettingsArgs> {
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
            detector,
            preset,
            hidden,
            latent,
            components,
            estimation_hidden,
            dropout,
            lambda_energy,
            lambda_cov,
            cov_eps,
            trim,
            select_length,
            alpha,
            cycle,
            score,
            epochs,
            min_steps,
            batch,
            lr,
            seed,
            members,
            threads
        ))
    }

    /// The detectors asked for (DAGMM when none), each named once.
    fn detectors(&self) -> Result<Vec<DetectorKind>> {
        let kinds = self.detector.clone().unwrap_or_default();
        if kinds.is_empty() {
            return Ok(vec![DetectorKind::Dagmm]);
        }
        if kinds.len() == 2 && kinds[0] == kinds[1] || kinds.len() > 2 {
            bail!("--detector takes one detector or two different ones (e.g. dagmm,egbad)");
        }
        Ok(kinds)
    }

    /// The one detector of a command that trains a single kind.
    fn single_detector(&self, command: &str) -> Result<DetectorKind> {
        match self.detectors()?.as_slice() {
            [one] => Ok(*one),
            _ => bail!("{command} takes one --detector (the workbench shows two side by side)"),
        }
    }

    /// The architecture of `kind` for an input of width `input`, flags laid over its rule.
    fn model_for(&self, kind: DetectorKind, input: usize) -> DetectorConfig {
        match kind {
            DetectorKind::Dagmm => DetectorConfig::Dagmm(self.dagmm_for(input)),
            DetectorKind::Egbad => {
                let mut c = EgbadConfig::default_for(input);
                c.hidden = self
                    .hidden
                    .as_ref()
                    .and_then(|h| h.first().copied())
                    .unwrap_or(c.hidden);
                c.latent = self.latent.unwrap_or(c.latent);
                c.dropout = self.dropout.unwrap_or(c.dropout);
                c.alpha = self
                    .alpha
                    .or(self.preset.unwrap_or_default().egbad_alpha())
                    .unwrap_or(c.alpha);
                c.cycle = self
                    .cycle
                    .or(self.preset.unwrap_or_default().egbad_cycle())
                    .unwrap_or(c.cycle);
                c.score = self.score.unwrap_or(c.score);
                // An α the user gives is the score they asked for.
                c.choose_by_tail &= self.alpha.is_none();
                DetectorConfig::Egbad(c)
            }
        }
    }

    fn dagmm_for(&self, input: usize) -> DagmmConfig {
        let mut c = DagmmConfig::preset(self.preset.unwrap_or_default(), input);
        c.hidden = self.hidden.clone().unwrap_or(c.hidden);
        c.latent = self.latent.unwrap_or(c.latent);
        c.components = self.components.unwrap_or(c.components);
        c.estimation_hidden = self.estimation_hidden.unwrap_or(c.estimation_hidden);
        c.dropout = self.dropout.unwrap_or(c.dropout);
        c.lambda_energy = self.lambda_energy.unwrap_or(c.lambda_energy);
        c.lambda_cov = self.lambda_cov.unwrap_or(c.lambda_cov);
        c.cov_eps = self.cov_eps.unwrap_or(c.cov_eps);
        c.trim = self.trim.unwrap_or(c.trim);
        c.select_length = self.select_length.unwrap_or(c.select_length);
        c
    }

    /// Training settings of `kind` for about `rows` training rows (which sets the
    /// default epochs).
    fn train_config(&self, kind: DetectorKind, rows: usize) -> Result<TrainConfig> {
        let batch = self.batch.unwrap_or(kind.default_batch());
        let min_steps = self.min_steps.unwrap_or(kind.default_min_steps());
        let config = TrainConfig {
            epochs: self
                .epochs
                .or(self.preset.unwrap_or_default().epochs(kind))
                .unwrap_or_else(|| default_epochs(rows, batch, min_steps)),
            batch,
            lr: self.lr.unwrap_or(kind.default_lr()),
            seed: self.seed.unwrap_or(0),
            members: self.members.unwrap_or(DEFAULT_MEMBERS),
        };
        if config.members == 0 {
            bail!("--members must be at least 1");
        }
        if config.batch < 2 {
            bail!("--batch must be at least 2");
        }
        if !(config.lr > 0.0 && config.lr.is_finite()) {
            bail!("--lr must be a positive number");
        }
        Ok(config)
    }
}

/// `train` arguments.
#[derive(Debug, Args)]
pub struct TrainCommand {
    /// Data file: CSV, Zeek log, JSON lines (each possibly gzipped) or Parquet; `-`: standard input.
    pub data: PathBuf,
    /// Directory for the checkpoint and scores.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Progress as JSON lines on stderr instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data_args: DataArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `score` arguments.
#[derive(Debug, Args)]
pub struct ScoreCommand {
    /// Checkpoint directory written by `train`.
    #[arg(long)]
    pub model: PathBuf,
    /// File to score (CSV, Zeek log, JSON lines, Parquet; `-`: standard input).
    pub data: PathBuf,
    /// Output CSV (`row,score[,label]`, one line per input row in order); standard output when absent. Written to a
    /// temporary file and renamed when complete: a failed run leaves an earlier file as it was.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The detector the checkpoint must hold (refused by name otherwise).
    #[arg(long, value_enum)]
    pub detector: Option<DetectorKind>,
    /// Missing values (empty, NA, NaN, ?, null): `error`, `mean` (the training mean; a
    /// categorical gets no level) or `drop` (the row is skipped and counted); default: the
    /// policy the model was trained with.
    #[arg(long, value_enum)]
    pub missing: Option<MissingPolicy>,
    /// Compute threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No header line: one line per input row and nothing else, for map-style jobs
    /// (Spark's `RDD.pipe`) that pair output lines with input rows.
    #[arg(long)]
    pub no_header: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `eval` arguments.
#[derive(Debug, Args)]
pub struct EvalCommand {
    /// Data files with a label column (any format), or directories of them (every .csv, .log,
    /// .json, .jsonl, .ndjson, .tsv, each possibly .gz, and .parquet inside).
    #[arg(required = true)]
    pub data: Vec<PathBuf>,
    /// Which rows train and which are scored: `paper` (train on the normal rows of a random
    /// half, score the other half) or `unsupervised` (fit on all rows, score all rows: the
    /// workbench's setting).
    #[arg(long, value_enum, default_value_t = Protocol::Paper)]
    pub protocol: Protocol,
    /// Label value of the anomaly class (e.g. `normal.` for KDDCUP); default: the rarer
    /// value of a two-valued label.
    #[arg(long)]
    pub anomaly: Option<String>,
    /// Independent runs (seeds seed, seed+1, …).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Unsupervised protocol: a simulated analyst marks this many top-ranked rows by their
    /// true label, the ensemble refits without the rows marked anomalous, and AUROC over
    /// the unmarked rows is reported before and after (0: off).
    #[arg(long, default_value_t = 20)]
    pub feedback: usize,
    /// Unsupervised protocol: the discovery loop (a simulated analyst marks the top
    /// unmarked row by its true label, the model learns it as the workbench does, up to
    /// the largest budget); reports found@B for the loop, the static ensemble and the
    /// in-run IsolationForest at each budget (comma separated, e.g. 50,100,200).
    #[arg(long, value_delimiter = ',')]
    pub discovery: Vec<usize>,
    /// Marks between two fine-tunes of the networks in the discovery loop (default: the
    /// workbench's 25; 0: never, the light layer alone).
    #[arg(long)]
    pub fine_tune_every: Option<usize>,
    /// Share of scored rows to flag; default: their true anomaly ratio.
    #[arg(long)]
    pub contamination: Option<f64>,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data_args: DataArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// Entry point for the binary: runs the command and turns errors into one line on stderr.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        // The reader of our output went away (`score … | head`): stop quietly, as a
        // program killed by SIGPIPE would.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.downcast_ref::<csv::Error>().is_some_and(|c| {
                        matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
                    })
            }) =>
        {
            141
        }
        Err(e) => {
            tell!("error: {e:#}");
            1
        }
    }
}

/// `bench`: measures and prints (text or JSON).
fn bench(cmd: &BenchCommand) -> Result<()> {
    let report = crate::bench::run(&crate::bench::BenchOptions {
        detector: cmd.detector,
        threads: compute_threads(cmd.threads)?,
        rows: cmd.rows,
        data: cmd.data_file.clone(),
        repeats: cmd.repeats,
        load: cmd.load.clone(),
    })?;
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for line in report.lines() {
            println!("{line}");
        }
    }
    Ok(())
}

/// `--threads`, or every core the machine offers.
fn compute_threads(requested: Option<usize>) -> Result<usize> {
    match requested {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// Sizes the compute pool once for the process.
fn apply_threads(requested: Option<usize>) -> Result<()> {
    // Fails only if a pool exists already (tests calling twice): keep the first.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(compute_threads(requested)?)
        .build_global();
    Ok(())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Train(cmd)) => {
            let settings = cmd.settings.resolved()?;
            apply_threads(settings.threads)?;
            train(&cmd, &settings)
        }
        Some(Command::Score(cmd)) => {
            apply_threads(cmd.threads)?;
            score(&cmd)
        }
        Some(Command::Eval(cmd)) => {
            let settings = cmd.settings.resolved()?;
            apply_threads(settings.threads)?;
            eval(&cmd, &settings)
        }
        Some(Command::Bench(cmd)) => bench(&cmd),
        None => match cli.data {
            Some(data) => {
                let settings = cli.settings.resolved()?;
                apply_threads(settings.threads)?;
                let safety = cli.output.safety();
                workbench(data, &cli.workbench, &cli.data_args, settings, safety)
            }
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
    crate::data::source::check_input(&data)?;
    if !(0.0..=100.0).contains(&args.flag_percent) {
        bail!("--flag-percent must be between 0 and 100");
    }
    let rescoring = match args.rescore_every {
        Some(0) => bail!("--rescore-every must be at least 1"),
        Some(n) => Rescoring::Every(n),
        None => Rescoring::Auto,
    };
    let model = match &args.model {
        Some(dir) => ModelSource::Checkpoint {
            dir: dir.clone(),
            expected: match &settings.detector {
                Some(_) => settings.detectors()?,
                None => Vec::new(),
            },
        },
        None => {
            let kinds = settings.detectors()?;
            ModelSource::Train(Box::new(move |width, rows| {
                kinds
                    .iter()
                    .map(|&kind| {
                        Ok((
                            settings.model_for(kind, width),
                            settings.train_config(kind, rows)?,
                        ))
                    })
                    .collect()
            }))
        }
    };
    let plan = SessionPlan {
        data,
        read: data_args.read_options(),
        scale: data_args.scale,
        model,
        options: WorkerOptions {
            rescoring,
            start_paused: args.paused,
        },
        keep_top: crate::train::session::TOP_ROWS,
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
                .unwrap_or_else(crate::triage::default_state_dir),
            anomaly: args.anomaly.clone(),
            contamination: args.flag_percent / 100.0,
            safety,
        },
    )
}

fn train(cmd: &TrainCommand, settings: &SettingsArgs) -> Result<()> {
    let data_args = &cmd.data_args;
    let scores_path = cmd.out.join("scores.csv");
    // Refused before hours of training, not after: the outputs must not replace the data.
    crate::data::source::check_input(&cmd.data)?;
    crate::files::refuse_input(&scores_path)?;
    let read = data_args.read_options();
    let table = read_table(&cmd.data, &read, None)?;
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, notes) = Encoder::fit(&table, &all, data_args.scale)?;
    for note in table.notes.iter().chain(&notes) {
        tell!("note: {note}");
    }
    let kind = settings.single_detector("train")?;
    let model = settings.model_for(kind, encoder.width());
    model.validate().map_err(anyhow::Error::msg)?;
    let train_config = settings.train_config(kind, table.len())?;
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
        report_progress(&event, kind, cmd.json);
    }
    let trained = worker
        .thread
        .join()
        .map_err(|_| anyhow::anyhow!("the training thread panicked"))??;
    // Trained on a sample: the scores file still covers every row of the file.
    let every_row = match table.sampled_from {
        Some(_) => Some(score_every_row(
            &cmd.data,
            &read,
            &encoder,
            &trained.ensemble,
        )?),
        None => None,
    };
    let (rows, scores, labels) = match &every_row {
        Some((rows, scores, labels)) => (rows, scores, labels.as_ref()),
        None => (&table.rows, &trained.scores, table.labels.as_ref()),
    };
    std::fs::create_dir_all(&cmd.out).with_context(|| format!("creating {}", cmd.out.display()))?;
    let staged_scores = StagedFile::write(&scores_path, |out| {
        write_scores(out, rows, scores, labels, cmd.output.safety())
    })?;
    checkpoint::save(&cmd.out, &trained.ensemble, &trained.meta(&read, &encoder))?;
    staged_scores.commit()?;
    let header = crate::triage::scores_header(labels);
    for note in header.notes() {
        tell!("note: {note}");
    }
    tell!(
        "wrote {} and the checkpoint in {}",
        scores_path.display(),
        cmd.out.display()
    );
    Ok(())
}

/// Every row of `data` scored by `ensemble`, read in chunks: what stays in memory is each
/// row's place in the file, its score and its label (about 40 bytes a row).
fn score_every_row(
    data: &std::path::Path,
    read: &ReadOptions,
    encoder: &Encoder,
    ensemble: &crate::model::Ensemble,
) -> Result<(
    Vec<crate::data::RowRef>,
    Vec<f64>,
    Option<crate::data::Labels>,
)> {
    let (mut rows, mut scores) = (Vec::new(), Vec::new());
    let mut labels: Option<crate::data::Labels> = None;
    let streamed = crate::train::scoring::score_file(
        data,
        read,
        &encoder.schema,
        encoder,
        &[ensemble],
        |chunk, chunk_scores| {
            scores.extend_from_slice(&chunk_scores[0]);
            rows.extend_from_slice(&chunk.rows);
            if let Some(chunk_labels) = chunk.labels {
                let kept = labels.get_or_insert_with(|| crate::data::Labels {
                    column: chunk_labels.column.clone(),
                    values: Vec::new(),
                    names: Vec::new(),
                });
                // One reader interns the labels of every chunk: the latest names hold them all.
                kept.values.extend(chunk_labels.values);
                kept.names = chunk_labels.names;
            }
            Ok(())
        },
    )?;
    let unseen = streamed.unseen_levels;
    if unseen > 0 {
        tell!("warning: {unseen} categorical cells outside the sample had a level the sample lacks (encoded as all zeros)");
    }
    tell!("scored every row of the file: {}", rows.len());
    Ok((rows, scores, labels))
}

/// `name value` pairs of a detector's loss components.
fn named_losses(kind: DetectorKind, losses: &[f64]) -> String {
    kind.loss_names()
        .iter()
        .zip(losses)
        .map(|(name, v)| format!("{name} {v:.5}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report_progress(event: &TrainEvent, kind: DetectorKind, json: bool) {
    if json {
        if let Some(value) = event_json(event, kind) {
            tell!("{}", json_safe(&value.to_string()));
        }
        return;
    }
    match event {
        TrainEvent::Started {
            rows,
            features,
            epochs,
            members,
            ..
        } => {
            tell!("training {members} {kind} model(s) on {rows} rows × {features} features for {epochs} epochs each")
        }
        TrainEvent::Epoch {
            epoch,
            losses,
            aux,
            samples_per_sec,
            elapsed_secs,
        } => {
            let aux = match kind.aux_title() {
                Some(title) if !aux.is_empty() => format!(
                    " {title} [{}]",
                    aux.iter()
                        .map(|p| format!("{p:.3}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                _ => String::new(),
            };
            tell!(
                "epoch {epoch}: {}{aux} {:.0} samples/s, {:.1} s",
                named_losses(kind, losses),
                samples_per_sec,
                elapsed_secs
            )
        }
        TrainEvent::Warning(w) | TrainEvent::CheckpointFailed(w) => tell!("warning: {w}"),
        TrainEvent::Diverged(divergence) => tell!("warning: {divergence}"),
        TrainEvent::ScoreChosen { member, note, .. } => tell!("member {member}: {note}"),
        TrainEvent::Failed(e) => tell!("error: {e}"),
        _ => {}
    }
}

fn event_json(event: &TrainEvent, kind: DetectorKind) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match event {
        TrainEvent::Started {
            rows,
            features,
            epochs,
            steps_per_epoch,
            ..
        } => {
            json!({"event": "started", "detector": kind, "rows": rows, "features": features, "epochs": epochs, "steps_per_epoch": steps_per_epoch})
        }
        TrainEvent::Epoch {
            epoch,
            losses,
            aux,
            samples_per_sec,
            elapsed_secs,
        } => {
            let named: serde_json::Map<String, serde_json::Value> = kind
                .loss_names()
                .iter()
                .zip(losses)
                .map(|(name, v)| (name.to_string(), json!(v)))
                .collect();
            json!({"event": "epoch", "epoch": epoch, "losses": named, "aux": aux,
            "samples_per_sec": samples_per_sec, "elapsed_secs": elapsed_secs})
        }
        TrainEvent::Warning(w) | TrainEvent::CheckpointFailed(w) => {
            json!({"event": "warning", "message": w})
        }
        TrainEvent::Diverged(divergence) => {
            let mut value = json!(divergence);
            value["event"] = "diverged".into();
            value
        }
        TrainEvent::ScoreChosen {
            detector,
            member,
            note,
        } => {
            json!({"event": "score_chosen", "detector": detector, "member": member, "message": note})
        }
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

fn score(cmd: &ScoreCommand) -> Result<()> {
    crate::data::source::check_input(&cmd.data)?;
    let ck = checkpoint::load_expecting(&cmd.model, cmd.detector)?;
    let mut read = ck.meta.read.clone();
    read.missing = cmd.missing.or(read.missing);
    let safety = cmd.output.safety();
    match &cmd.out {
        Some(path) => {
            crate::files::refuse_input(path)?;
            // Everything goes to a temporary file first: a run that fails half-way leaves an
            // earlier output exactly as it was.
            let mut outcome = None;
            let staged = StagedFile::write(path, |out| {
                outcome = Some(score_rows(cmd, &ck, &read, out, &|t: &str| {
                    safety.apply(t).into_owned()
                })?);
                Ok(())
            })?;
            staged.commit()?;
            report_scored(outcome.expect("set by a successful write"), &cmd.data);
        }
        None => {
            // Label text shown on a terminal is escaped like everything else on screen.
            let to_terminal = std::io::stdout().is_terminal();
            let cell = |text: &str| {
                let text = safety.apply(text);
                if to_terminal {
                    visible(&text).into_owned()
                } else {
                    text.into_owned()
                }
            };
            let outcome = score_rows(cmd, &ck, &read, std::io::stdout().lock(), &cell)?;
            report_scored(outcome, &cmd.data);
        }
    }
    Ok(())
}

/// What a `score` run wrote.
struct Scored {
    /// Rows read from the file.
    read: u64,
    /// Rows scored and written (fewer than `read` when `--missing drop` skipped some).
    written: u64,
    /// Categorical cells whose level training never saw.
    unseen: u64,
}

/// Streams `cmd.data` through the checkpoint into `out` as `row,score[,label]`, each label
/// cell through `cell`.
fn score_rows(
    cmd: &ScoreCommand,
    ck: &checkpoint::Checkpoint,
    read: &crate::data::ReadOptions,
    out: impl Write,
    cell: &dyn Fn(&str) -> String,
) -> Result<Scored> {
    let mut writer = csv::Writer::from_writer(BufWriter::new(out));
    let mut header_written = false;
    let mut written = 0u64;
    let streamed = crate::train::scoring::score_file(
        &cmd.data,
        read,
        &ck.meta.encoder.schema,
        &ck.meta.encoder,
        &[&ck.ensemble],
        |chunk, scores| {
            let scores = &scores[0];
            if !header_written && !cmd.no_header {
                let header = crate::triage::scores_header(chunk.labels.as_ref());
                let mut names = vec![header.row.clone(), header.score.clone()];
                names.extend(header.label.as_deref().map(cell));
                writer.write_record(&names)?;
                header_written = true;
            }
            for (i, row) in chunk.rows.iter().enumerate() {
                let mut record = vec![row.number.to_string(), scores[i].to_string()];
                record.extend(chunk.labels.as_ref().map(|l| cell(l.name(i))));
                writer.write_record(&record)?;
            }
            written += chunk.len() as u64;
            Ok(())
        },
    )?;
    writer.flush()?;
    Ok(Scored {
        read: streamed.records,
        written,
        unseen: streamed.unseen_levels,
    })
}

fn report_scored(scored: Scored, data: &std::path::Path) {
    if scored.unseen > 0 {
        tell!(
            "warning: {} categorical cells had a level not seen in training (encoded as all zeros)",
            scored.unseen
        );
    }
    if let Some(note) = crate::data::source::input_note(data) {
        tell!("note: {note}");
    }
    let dropped = scored.read - scored.written;
    if dropped > 0 {
        tell!(
            "scored {} rows (dropped {dropped} of {} rows with missing values: --missing drop)",
            scored.written,
            scored.read
        );
    } else {
        tell!("scored {} rows", scored.written);
    }
}

/// A file `eval` could not measure, and why.
#[derive(Debug, serde::Serialize)]
struct FailedFile {
    data: String,
    error: String,
}

impl FailedFile {
    /// The failure of file `data`; the reason names the file (data errors already do).
    fn new(data: String, error: &anyhow::Error) -> Self {
        let reason = format!("{error:#}");
        let error = if reason.starts_with(&data) {
            reason
        } else {
            format!("{data}: {reason}")
        };
        FailedFile { data, error }
    }
}

fn eval(cmd: &EvalCommand, settings: &SettingsArgs) -> Result<()> {
    let data_args = &cmd.data_args;
    let Some(label) = &data_args.label else {
        bail!("eval needs --label COLUMN");
    };
    if cmd.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if data_args.sample.is_some() {
        bail!("eval measures every row of a file; --sample is for train and the workbench");
    }
    let kind = settings.single_detector("eval")?;
    let files = eval_files(&cmd.data)?;
    let read = ReadOptions {
        sample: Some(0),
        ..data_args.read_options()
    };
    // Every file is read and checked before any training: a bad file is reported at once
    // (and again in the results), and never stops the others.
    let mut failed = Vec::new();
    let mut good = Vec::new();
    for path in &files {
        let name = path.display().to_string();
        let checked = read_table(path, &read, None)
            .map_err(anyhow::Error::from)
            .and_then(|table| eval_anomaly(cmd, &table, label).map(|_| ()));
        match checked {
            Ok(()) => good.push(path),
            Err(e) => {
                let failure = FailedFile::new(name, &e);
                tell!("error: {} (skipped; the other files go on)", failure.error);
                failed.push(failure);
            }
        }
    }
    let mut reports = Vec::new();
    for path in good {
        let name = path.display().to_string();
        match eval_file(cmd, settings, kind, path, &read, label) {
            Ok(report) => reports.push(report),
            Err(e) => {
                let failure = FailedFile::new(name, &e);
                tell!("error: {} (the other files go on)", failure.error);
                failed.push(failure);
            }
        }
    }
    let overall = Overall::of(&reports);
    if cmd.json {
        let value = serde_json::json!({
            "protocol": cmd.protocol,
            "files": reports,
            "failed": failed,
            "median_over_files": overall,
        });
        println!("{}", json_safe(&serde_json::to_string_pretty(&value)?));
    } else {
        for report in &reports {
            println!("{}", visible(&report.data));
            print_table(&report.runs, &report.summary);
            println!();
        }
        if reports.len() > 1 {
            print_overall(&reports, &overall);
        }
        print_discovery(&reports);
        for f in &failed {
            println!("{}: FAILED: {}", visible(&f.data), visible(&f.error));
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} files could not be measured: {}",
            failed.len(),
            files.len(),
            failed
                .iter()
                .map(|f| f.data.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// The anomaly class of `table`'s label: `--anomaly`, or the rarer of two values.
fn eval_anomaly(cmd: &EvalCommand, table: &crate::data::RawTable, label: &str) -> Result<String> {
    let labels = table.labels.as_ref().expect("--label was given");
    let anomaly = match (&cmd.anomaly, labels.rarer_of_two()) {
        (Some(a), _) => a.clone(),
        (None, Some(rarer)) => labels.names[rarer as usize].clone(),
        (None, None) => bail!(
            "label '{label}' has {} values: pass --anomaly VALUE",
            labels.names.len()
        ),
    };
    labels.is_value(&anomaly).map_err(anyhow::Error::msg)?;
    Ok(anomaly)
}

/// Runs `eval`'s protocol on one file.
fn eval_file(
    cmd: &EvalCommand,
    settings: &SettingsArgs,
    kind: DetectorKind,
    path: &std::path::Path,
    read: &crate::data::ReadOptions,
    label: &str,
) -> Result<FileReport> {
    let table = read_table(path, read, None)?;
    let anomaly = eval_anomaly(cmd, &table, label)?;
    let name = path.display().to_string();
    tell!("{name}: {} rows, anomaly class '{anomaly}'", table.len());
    let train_rows = match cmd.protocol {
        // The training half: at most half the rows (its anomalies are left out too).
        Protocol::Paper => table.len() / 2,
        Protocol::Unsupervised => table.len(),
    };
    let opts = ProtocolOptions {
        protocol: cmd.protocol,
        anomaly: anomaly.clone(),
        runs: cmd.runs,
        contamination: cmd.contamination,
        feedback: cmd.feedback,
        discovery: cmd.discovery.clone(),
        fine_tune_every: cmd.fine_tune_every,
        scale: cmd.data_args.scale,
        train: settings.train_config(kind, train_rows)?,
    };
    let runs = run_protocol(
        &table,
        &opts,
        |w| settings.model_for(kind, w),
        |line| tell!("{line}"),
        |line| tell!("note: {name}: {line}"),
    )?;
    Ok(FileReport {
        summary: Summary::of(&runs),
        data: name,
        anomaly,
        rows: table.len(),
        train: opts.train,
        runs,
    })
}

/// Names a directory scan takes as data files (each also gzipped, but Parquet). The
/// format itself is told by the content; the names only keep other files out of a scan.
const DATA_FILE_ENDINGS: [&str; 6] = [".csv", ".log", ".json", ".jsonl", ".ndjson", ".tsv"];

/// `true` for a file name a directory scan takes as data.
fn is_data_file_name(name: &str) -> bool {
    let text = name.strip_suffix(".gz").unwrap_or(name);
    name.ends_with(".parquet") || DATA_FILE_ENDINGS.iter().any(|e| text.ends_with(e))
}

/// The files `eval` reads: each argument as given, or the data files inside a directory
/// argument (see [`is_data_file_name`]), in name order.
fn eval_files(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(arg)
                .with_context(|| format!("reading directory {}", arg.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    p.is_file() && is_data_file_name(name)
                })
                .collect();
            inside.sort();
            if inside.is_empty() {
                bail!(
                    "{}: no data file inside (.csv, .log, .json, .jsonl, .ndjson, .tsv, each possibly .gz, or .parquet)",
                    arg.display()
                );
            }
            files.extend(inside);
        } else {
            // Checked with the others before training: a bad one is reported, not fatal.
            files.push(arg.clone());
        }
    }
    Ok(files)
}

/// The discovery loop's found@B per file (medians over seeds), when it ran.
fn print_discovery(reports: &[FileReport]) {
    let Some(first) = reports.iter().find(|r| !r.summary.discovery.is_empty()) else {
        return;
    };
    let mut budgets: Vec<&String> = first.summary.discovery["feedback"].keys().collect();
    budgets.sort_by_key(|b| b.parse::<usize>().unwrap_or(0));
    println!();
    println!("discovery (median over seeds): found@B feedback / static / IsolationForest");
    for r in reports {
        let d = &r.summary.discovery;
        let cells: Vec<String> = budgets
            .iter()
            .map(|b| {
                let at = |m: &str| {
                    d.get(m)
                        .and_then(|x| x.get(*b))
                        .map_or(f64::NAN, |s| s.median)
                };
                format!(
                    "@{b} {:.0} / {:.0} / {:.0}",
                    at("feedback"),
                    at("static"),
                    at("iforest")
                )
            })
            .collect();
        let name = std::path::Path::new(&r.data)
            .file_name()
            .map_or_else(|| r.data.clone(), |n| n.to_string_lossy().into_owned());
        println!("{:<28} {}", visible(&name), cells.join("   "));
    }
}

fn print_overall(reports: &[FileReport], overall: &Overall) {
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  analyst: unmarked AUROC before → after",
        "file (median over seeds)", "AUROC", "untr", "IForest", "AUPRC", "untr", "IForest",
    );
    for r in reports {
        let s = &r.summary;
        let name = std::path::Path::new(&r.data)
            .file_name()
            .map_or_else(|| r.data.clone(), |n| n.to_string_lossy().into_owned());
        let analyst = if s.feedback_before.median.is_nan() || s.feedback_after.median.is_nan() {
            "-".to_string()
        } else {
            format!(
                "{:.4} → {:.4}",
                s.feedback_before.median, s.feedback_after.median
            )
        };
        println!(
            "{:<28} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}  {analyst}",
            visible(&name),
            s.auroc.median,
            s.untrained_auroc.median,
            s.reference_auroc.median,
            s.auprc.median,
            s.untrained_auprc.median,
            s.reference_auprc.median
        );
    }
    let o = overall;
    println!(
        "{:<28} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
        format!("median over {} files", o.files),
        o.auroc,
        o.untrained_auroc,
        o.reference_auroc,
        o.auprc,
        o.untrained_auprc,
        o.reference_auprc
    );
    println!(
        "trained beats untrained on {} of {} files; trained ≥ IsolationForest on {} of {}",
        o.trained_beats_untrained, o.files, o.trained_at_least_reference, o.files
    );
}

fn print_table(reports: &[RunReport], summary: &Summary) {
    println!(
        "{:>4} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>8} {:>10}",
        "run",
        "seed",
        "P",
        "R",
        "F1",
        "AUROC",
        "AUPRC",
        "F1 u",
        "AUROC u",
        "AUPRC u",
        "F1 IF",
        "AUROC IF",
        "AUPRC IF",
        "ratio",
        "train s",
        "samples/s"
    );
    for r in reports {
        println!(
            "{:>4} {:>6} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>8.1} {:>10.0}",
            r.run,
            r.seed,
            r.trained.precision,
            r.trained.recall,
            r.trained.f1,
            r.trained.auroc,
            r.trained.auprc,
            r.untrained.f1,
            r.untrained.auroc,
            r.untrained.auprc,
            r.reference.f1,
            r.reference.auroc,
            r.reference.auprc,
            r.test_anomaly_ratio,
            r.train_seconds,
            r.samples_per_sec
        );
    }
    let s = summary;
    type Pick = fn(&Spread) -> f64;
    let rows: [(&str, Pick); 3] = [
        ("min", |x| x.min),
        ("median", |x| x.median),
        ("max", |x| x.max),
    ];
    for (name, pick) in rows {
        println!(
            "{:>11} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} | {:>7} {:>8.1} {:>10.0}",
            name,
            pick(&s.precision),
            pick(&s.recall),
            pick(&s.f1),
            pick(&s.auroc),
            pick(&s.auprc),
            pick(&s.untrained_f1),
            pick(&s.untrained_auroc),
            pick(&s.untrained_auprc),
            pick(&s.reference_f1),
            pick(&s.reference_auroc),
            pick(&s.reference_auprc),
            "",
            pick(&s.train_seconds),
            pick(&s.samples_per_sec)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_scan_takes_every_format_and_nothing_else() {
        for name in [
            "a.csv",
            "a.csv.gz",
            "conn.log",
            "conn.log.gz",
            "eve.json",
            "x.jsonl.gz",
        ] {
            assert!(is_data_file_name(name), "{name}");
        }
        assert!(is_data_file_name("extract.parquet") && is_data_file_name("f.ndjson"));
        for name in ["README.md", "notes.txt", "x.parquet.gz", "scores.csv.bak"] {
            assert!(!is_data_file_name(name), "{name}");
        }
    }
}
