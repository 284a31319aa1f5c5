//! The native CLI: `vmdisk info`, `vmdisk convert`, `vmdisk map`, in qemu-img's habits.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(cli::main())
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use clap::{Parser, Subcommand, ValueEnum};
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use vmdisk::codec::Codec;
    use vmdisk::native::{FileSink, FileSource, ThreadPool, block_on};
    use vmdisk::writer::{OutputFormat, Qcow2Compat, WriteOptions};
    use vmdisk::{Error, ImageSet, OpenedImage, Report, Result, Source};

    #[derive(Parser)]
    #[command(
        name = "vmdisk",
        version,
        about = "Inspect, validate and convert virtual machine disk images"
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Identify an image and report its size, details and safety findings.
        Info {
            /// Print one JSON object instead of text.
            #[arg(long)]
            json: bool,
            /// The image and its companions (backing file, extents), resolved by file name.
            #[arg(required = true)]
            files: Vec<PathBuf>,
        },
        /// Convert an image (flattening its backing chain) to raw or qcow2.
        Convert {
            /// Output format.
            #[arg(short = 'O', value_enum)]
            output_format: OutFormat,
            /// Compress every qcow2 cluster.
            #[arg(short = 'c')]
            compress: bool,
            #[arg(long, value_enum, default_value = "zlib")]
            compression_type: CompressionType,
            /// qcow2 cluster size (bytes, or with a k/M suffix).
            #[arg(long, value_parser = parse_size, default_value = "64k")]
            cluster_size: u64,
            /// qcow2 version: 0.10 (v2) or 1.1 (v3).
            #[arg(long, default_value = "1.1", value_parser = ["0.10", "1.1"])]
            compat: String,
            /// Show a progress bar on stderr.
            #[arg(short = 'p')]
            progress: bool,
            #[arg(long, short = 'o')]
            output: PathBuf,
            #[arg(required = true)]
            files: Vec<PathBuf>,
        },
        /// Print where every guest byte lives, like `qemu-img map`.
        Map {
            /// JSON rows in the shape of `qemu-img map --output=json`.
            #[arg(long)]
            json: bool,
            #[arg(required = true)]
            files: Vec<PathBuf>,
        },
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum OutFormat {
        Raw,
        Qcow2,
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum CompressionType {
        Zlib,
        Zstd,
    }

    fn parse_size(s: &str) -> std::result::Result<u64, String> {
        let (num, mult) = match s.as_bytes().last() {
            Some(b'k' | b'K') => (&s[..s.len() - 1], 1 << 10),
            Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
            _ => (s, 1),
        };
        num.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .ok_or_else(|| format!("bad size {s:?}"))
    }

    pub fn main() -> i32 {
        let cli = Cli::parse();
        match run(cli.command) {
            Ok(()) => 0,
            Err(Error::Cancelled) => {
                eprintln!("vmdisk: cancelled");
                130
            }
            Err(e) => {
                eprintln!("vmdisk: {e}");
                1
            }
        }
    }

    fn open(files: &[PathBuf]) -> Result<OpenedImage> {
        let mut sources: Vec<Rc<dyn Source>> = vec![];
        for path in files {
            let src = FileSource::open(path)?;
            if sources.iter().any(|s| s.name() == src.name()) {
                return Err(Error::Invalid(format!(
                    "two files are named {}: companions are matched by name",
                    src.name()
                )));
            }
            sources.push(Rc::new(src));
        }
        block_on(vmdisk::open(ImageSet::new(sources)))
    }

    fn run(command: Command) -> Result<()> {
        match command {
            Command::Info { json, files } => {
                let opened = open(&files)?;
                let report = vmdisk::inspect(&opened);
                let text = if json {
                    serde_json::to_string_pretty(&report).expect("report serialises") + "\n"
                } else {
                    human(&report)
                };
                print_out(&text)
            }
            Command::Map { json, files } => {
                let opened = open(&files)?;
                let image = readable(&opened)?;
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                let mut first = true;
                let mut io_err = None;
                if json {
                    let _ = write!(out, "[");
                }
                block_on(vmdisk::engine::map(&opened.set, image, &mut |row| {
                    let r = if json {
                        let sep = if first { "" } else { ",\n" };
                        write!(
                            out,
                            "{sep}{}",
                            serde_json::to_string(&row).expect("row serialises")
                        )
                    } else {
                        let place = match (&row.file, row.offset, row.compressed) {
                            (Some(f), Some(o), _) => format!("{f} @ {o}"),
                            (_, _, true) => "compressed".into(),
                            _ if row.present => "zero".into(),
                            _ => "unallocated".into(),
                        };
                        writeln!(
                            out,
                            "{:>16} {:>16} depth {} {place}",
                            row.start, row.length, row.depth
                        )
                    };
                    first = false;
                    if let Err(e) = r {
                        io_err.get_or_insert(e);
                    }
                }))?;
                if json {
                    let _ = writeln!(out, "]");
                }
                match io_err.map_or_else(|| out.flush(), Err) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                    _ => Ok(()),
                }
            }
            Command::Convert {
                output_format,
                compress,
                compression_type,
                cluster_size,
                compat,
                progress,
                output,
                files,
            } => {
                let opts = WriteOptions {
                    format: match output_format {
                        OutFormat::Raw => OutputFormat::Raw,
                        OutFormat::Qcow2 => OutputFormat::Qcow2,
                    },
                    compression: compress.then_some(match compression_type {
                        CompressionType::Zlib => Codec::Deflate,
                        CompressionType::Zstd => Codec::Zstd,
                    }),
                    cluster_size: u32::try_from(cluster_size)
                        .map_err(|_| Error::Invalid("cluster size too large".into()))?,
                    compat: if compat == "0.10" {
                        Qcow2Compat::V0_10
                    } else {
                        Qcow2Compat::V1_1
                    },
                };
                opts.validate()?;
                refuse_overwriting_inputs(&output, &files)?;
                let opened = open(&files)?;
                let image = readable(&opened)?;
                convert_to(&opened, image, &opts, &output, progress)
            }
        }
    }

    /// Write to stdout; a closed pipe (`vmdisk info | head`) is not an error worth a message.
    fn print_out(text: &str) -> Result<()> {
        match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn readable(opened: &OpenedImage) -> Result<&dyn vmdisk::Image> {
        let format = opened.probe.primary().format;
        let image = opened.image.as_deref().ok_or_else(|| {
            Error::Unsupported(format!("reading {format} images is not supported yet"))
        })?;
        vmdisk::engine::check_readable(image)?;
        Ok(image)
    }

    fn refuse_overwriting_inputs(output: &Path, inputs: &[PathBuf]) -> Result<()> {
        let Ok(out) = std::fs::metadata(output) else {
            return Ok(());
        };
        for input in inputs {
            if let Ok(m) = std::fs::metadata(input)
                && (m.dev(), m.ino()) == (out.dev(), out.ino())
            {
                return Err(Error::Invalid(format!(
                    "output {} is one of the inputs",
                    output.display()
                )));
            }
        }
        Ok(())
    }

    /// Write to a temporary file beside the output and rename it into place only on success,
    /// so a failed or interrupted conversion leaves nothing behind.
    fn convert_to(
        opened: &OpenedImage,
        image: &dyn vmdisk::Image,
        opts: &WriteOptions,
        output: &Path,
        show: bool,
    ) -> Result<()> {
        let dir = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = output
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("bad output path {}", output.display())))?;
        let partial = dir.join(format!(
            ".{}.{}.vmdisk-partial",
            base.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(|e| Error::Io(format!("{}: {e}", partial.display())))?;
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        // Only the first handler registration can succeed; later conversions in-process reuse it.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));

        let bar = show.then(|| {
            let bar = indicatif::ProgressBar::new(image.virtual_size());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template"),
            );
            bar
        });
        let result = (|| {
            let mut sink = FileSink::new(file);
            let mut writer = vmdisk::writer::new_writer(opts, image.virtual_size())?;
            let pool = ThreadPool::new();
            let mut progress = |done: u64, _total: u64| {
                if let Some(b) = &bar {
                    b.set_position(done);
                }
                !cancelled.load(Ordering::SeqCst)
            };
            block_on(vmdisk::engine::convert(
                &opened.set,
                image,
                &mut *writer,
                &mut sink,
                &pool,
                &mut progress,
            ))?;
            block_on(vmdisk::Sink::finish(&mut sink))?;
            std::fs::rename(&partial, output)
                .map_err(|e| Error::Io(format!("{}: {e}", output.display())))
        })();
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    fn human(r: &Report) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let main = r
            .files
            .iter()
            .find(|f| f.role == "image")
            .map_or("?", |f| f.name.as_str());
        let _ = writeln!(s, "image: {main}");
        let _ = writeln!(s, "file format: {}", r.format);
        if r.detected.len() > 1 {
            let all: Vec<_> = r.detected.iter().map(|f| f.name()).collect();
            let _ = writeln!(s, "also detected: {}", all[1..].join(", "));
        }
        let _ = writeln!(
            s,
            "virtual size: {} ({} bytes)",
            size(r.virtual_size),
            r.virtual_size
        );
        let _ = writeln!(s, "disk size: {}", size(r.actual_size));
        if let serde_json::Value::Object(m) = &r.format_specific
            && !m.is_empty()
        {
            let _ = writeln!(s, "format specific information:");
            for (k, v) in m {
                let v = match v {
                    serde_json::Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                let _ = writeln!(s, "    {k}: {v}");
            }
        }
        for f in &r.files {
            if f.role != "image" {
                let _ = writeln!(s, "{}: {} ({})", f.role, f.name, size(f.size));
            }
        }
        let _ = writeln!(
            s,
            "convertible: {}",
            if r.convertible { "yes" } else { "no" }
        );
        let _ = writeln!(
            s,
            "safety: {}",
            if r.safety.safe { "safe" } else { "UNSAFE" }
        );
        for f in &r.safety.findings {
            let _ = writeln!(
                s,
                "    [{}] {}: {}",
                serde_json::to_value(f.severity)
                    .unwrap()
                    .as_str()
                    .unwrap_or(""),
                f.code,
                f.message
            );
        }
        s
    }

    fn size(n: u64) -> String {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut v = n as f64;
        let mut u = 0;
        while v >= 1024.0 && u < UNITS.len() - 1 {
            v /= 1024.0;
            u += 1;
        }
        if u == 0 {
            format!("{n} B")
        } else {
            format!("{v:.3} {}", UNITS[u]).replace(".000 ", " ")
        }
    }
}
