//! The native CLI: `vmdisk info`, `vmdisk convert`, `vmdisk map`, in qemu-img's habits.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(cli::main())
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use clap::{Args, Parser, Subcommand, ValueEnum};
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use vmdisk::codec::Codec;
    use vmdisk::native::{FileSink, FileSource, TempScratch, ThreadPool, block_on};
    use vmdisk::package::{Options, Role};
    use vmdisk::writer::{OutputFormat, Qcow2Compat, WriteOptions};
    use vmdisk::{Error, FindingCode, ImageSet, OpenedImage, Result, Source};

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
        /// Identify an image and report its size, details and safety findings. A package's
        /// manifest digests are checked and compressed streams decoded whole, unless
        /// --no-verify.
        Info {
            #[command(flatten)]
            report: ReportArgs,
            /// Say only whether this cloud accepts the image (repeatable; default: all four).
            #[arg(long = "target", value_name = "NAME", value_parser = ["openstack", "aws", "azure", "gce"])]
            targets: Vec<String>,
            /// Also compute the checksums glance records (MD5 and SHA-512 of the file
            /// uploaded), reading it once.
            #[arg(long)]
            hash: bool,
            /// The image and its companions (backing file, extents), resolved by file name.
            #[arg(required = true)]
            files: Vec<PathBuf>,
        },
        /// Write a member of a package as it is stored (decompressed where the package
        /// compressed it): a UEC tarball's kernel or ramdisk, an OVA's descriptor.
        Extract {
            /// The member's name (its path in the package, or its file name).
            #[arg(long)]
            member: String,
            #[arg(long, short = 'o')]
            output: PathBuf,
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
            /// Convert disk N of a package (1-based; default: the first disk, or a UEC
            /// tarball's machine image).
            #[arg(long, value_name = "N", conflicts_with = "all_disks")]
            disk: Option<usize>,
            /// Convert every disk of a package into the directory given as --output, each
            /// named after its disk.
            #[arg(long)]
            all_disks: bool,
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
        /// Check an image's consistency like `qemu-img check`: exit 0 when clean, 2 for
        /// corruptions, 3 for leaked clusters only, 1 when the check could not run.
        #[command(mut_arg("json", |a| {
            a.help("One JSON object in the shape of `qemu-img check --output=json`")
        }))]
        Check {
            #[command(flatten)]
            report: ReportArgs,
            #[arg(required = true)]
            files: Vec<PathBuf>,
        },
    }

    /// How `info` and `check` print and how much of a package they read.
    #[derive(Args)]
    struct ReportArgs {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Skip reading a package through to verify its manifest digests and compressed
        /// streams.
        #[arg(long)]
        no_verify: bool,
        /// Show a progress bar on stderr while the files are read through.
        #[arg(short = 'p')]
        progress: bool,
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
            Err(e) if e.is_cancelled() => {
                eprintln!("vmdisk: cancelled");
                130
            }
            Err(e) => {
                eprintln!("vmdisk: {e}");
                1
            }
        }
    }

    /// Seconds since the epoch, for certificate validity.
    fn now() -> Option<i64> {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
    }

    fn open(files: &[PathBuf]) -> Result<OpenedImage> {
        open_with(files, &Options::default())
    }

    fn open_with(files: &[PathBuf], opts: &Options) -> Result<OpenedImage> {
        let mut sources: Vec<Rc<dyn Source>> = vec![];
        for path in files {
            let src = FileSource::open(path)?;
            if sources.iter().any(|s| s.name() == src.name()) {
                return Err(Error::invalid(format!(
                    "two files are named {}: companions are matched by name",
                    src.name()
                )));
            }
            sources.push(Rc::new(src));
        }
        let opts = Options {
            now: now(),
            ..opts.clone()
        };
        block_on(vmdisk::image::open_with(ImageSet::new(sources), &opts))
    }

    fn run(command: Command) -> Result<()> {
        match command {
            Command::Info {
                report:
                    ReportArgs {
                        json,
                        no_verify,
                        progress,
                    },
                targets,
                hash,
                files,
            } => {
                let opened = open(&files)?;
                let mut report = block_on(vmdisk::inspect_guest(&opened));
                if !targets.is_empty() {
                    report
                        .clouds
                        .retain(|v| targets.iter().any(|t| t == v.target.name()));
                }
                if let Some(pkg) = &opened.package
                    && !no_verify
                {
                    let found = with_bar(progress, 0, |bar| {
                        block_on(vmdisk::package::verify(
                            &opened.set,
                            pkg,
                            None,
                            &mut |d, t| bar(d, t),
                        ))
                    })?;
                    report.add_findings(found);
                }
                if hash {
                    let src = opened.set.file(opened.main).clone();
                    let hashes = with_bar(progress, src.len(), |bar| {
                        let cancel = AtomicBool::new(false);
                        block_on(vmdisk::glance::hash(
                            &*src,
                            &mut |d, t| {
                                if !bar(d, t) {
                                    cancel.store(true, Ordering::SeqCst);
                                }
                            },
                            &cancel,
                        ))
                    })?;
                    vmdisk::glance::record_hashes(&mut report, hashes);
                }
                let text = if json {
                    serde_json::to_string_pretty(&report).expect("report serialises") + "\n"
                } else {
                    report.text()
                };
                print_out(&text)
            }
            Command::Extract {
                member,
                output,
                files,
            } => {
                refuse_overwriting_inputs(&output, &files)?;
                let opened = open(&files)?;
                extract(&opened, &member, &output)
            }
            Command::Map { json, files } => {
                let opened = open(&files)?;
                let image = opened.target(None)?;
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
                disk,
                all_disks,
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
                        .map_err(|_| Error::invalid("cluster size too large"))?,
                    compat: if compat == "0.10" {
                        Qcow2Compat::V0_10
                    } else {
                        Qcow2Compat::V1_1
                    },
                };
                opts.validate()?;
                refuse_overwriting_inputs(&output, &files)?;
                let disk = match disk {
                    Some(0) => return Err(Error::invalid("disks are numbered from 1")),
                    d => d.map(|n| n - 1),
                };
                // A single disk stops a tarball's walk at it: the stream is decoded once.
                let mut opened = open_with(
                    &files,
                    &Options {
                        list_all: all_disks,
                        disk,
                        now: None,
                    },
                )?;
                if !all_disks {
                    return convert_disk(&mut opened, disk, &opts, &output, progress);
                }
                let count = opened.package.as_ref().map_or(0, |p| p.disks.len());
                if count == 0 {
                    return Err(Error::invalid(
                        "--all-disks needs a package (OVA, OVF, UEC, GCE, compressed image)",
                    ));
                }
                std::fs::create_dir_all(&output)
                    .map_err(|e| Error::io(format!("{}: {e}", output.display())))?;
                for n in 0..count {
                    let pkg = opened.package.as_ref().expect("a package");
                    let d = &pkg.disks[n];
                    if !matches!(d.role, Role::Disk | Role::Ami) {
                        eprintln!(
                            "vmdisk: {} is not a disk ({}): skipped",
                            d.name,
                            d.role.name()
                        );
                        continue;
                    }
                    let ext = match opts.format {
                        OutputFormat::Raw => "raw",
                        OutputFormat::Qcow2 => "qcow2",
                    };
                    let out = output.join(format!("{}.{ext}", stem(&d.name)));
                    convert_disk(&mut opened, Some(n), &opts, &out, progress)?;
                }
                Ok(())
            }
            Command::Check {
                report:
                    ReportArgs {
                        json,
                        no_verify,
                        progress,
                    },
                files,
            } => {
                let mut sources: Vec<Rc<dyn Source>> = vec![];
                for path in &files {
                    sources.push(Rc::new(FileSource::open(path)?));
                }
                let set = ImageSet::new(sources);
                let pkg = Options {
                    now: now(),
                    ..Options::default()
                };
                let opts = vmdisk::check::Options { verify: !no_verify };
                let result = with_bar(progress, 0, |bar| {
                    let check = vmdisk::check::check_files(set, &pkg, &opts, &TempScratch, bar);
                    block_on(check)
                })?;
                print_out(&match json {
                    true => serde_json::to_string_pretty(&result).expect("serialises") + "\n",
                    false => vmdisk::check::human(&result),
                })?;
                std::process::exit(result.exit_code())
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

    /// A disk's name without its directory and extension: `disks/web-disk1.vmdk` -> `web-disk1`.
    fn stem(name: &str) -> String {
        let base = vmdisk::source::base_name(name);
        match base.rsplit_once('.') {
            Some((s, _)) if !s.is_empty() => s.to_string(),
            _ => base.to_string(),
        }
    }

    /// Run `f` with a progress callback that draws a bar on stderr when `show` (total known
    /// from the first call when `total` is 0) and returns false once Ctrl-C was pressed.
    fn with_bar<T>(
        show: bool,
        total: u64,
        f: impl FnOnce(&mut dyn FnMut(u64, u64) -> bool) -> T,
    ) -> T {
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        // Only the first registration succeeds; later ones in-process reuse it.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
        let bar = show.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template"),
            );
            bar
        });
        let mut progress = |done: u64, total: u64| {
            if let Some(b) = &bar {
                b.set_length(total);
                b.set_position(done);
            }
            !cancelled.load(Ordering::SeqCst)
        };
        let result = f(&mut progress);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        result
    }

    /// Convert disk `disk` of `opened` (or the image itself): check the manifest digests of
    /// what it reads, decompress it first when its format is read at random, then convert.
    fn convert_disk(
        opened: &mut OpenedImage,
        disk: Option<usize>,
        opts: &WriteOptions,
        output: &Path,
        show: bool,
    ) -> Result<()> {
        if let Some(n) = opened.disk_index(disk)? {
            let pkg = opened.package.as_ref().expect("a package");
            let members = pkg.disks[n].members.clone();
            if pkg.checks.digests.iter().any(|d| members.contains(&d.file)) {
                let found = with_bar(show, 0, |bar| {
                    block_on(vmdisk::package::verify(
                        &opened.set,
                        pkg,
                        Some(&members),
                        bar,
                    ))
                })?;
                if let Some(bad) = found.iter().find(|f| f.code == FindingCode::DigestMismatch) {
                    return Err(Error::corrupt(bad.message.clone()));
                }
            }
            with_bar(show, 0, |bar| {
                block_on(opened.prepare(Some(n), &TempScratch, &mut |done| bar(done, done)))
            })?;
        }
        let image = opened.target(disk)?;
        convert_to(opened, image, opts, output, show)
    }

    /// Copy a package member into `output` (through a temporary file renamed into place).
    fn extract(opened: &OpenedImage, member: &str, output: &Path) -> Result<()> {
        let pkg = opened.package.as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "{} is not a package: there is nothing to extract",
                opened.set.file(opened.main).name()
            ))
        })?;
        let wanted = vmdisk::source::base_name(member);
        // A disk's decompressed view comes before the member it is read from.
        let mut files = pkg.files.clone();
        files.sort_by_key(|&(_, role)| role != "disk");
        let (id, _) = files
            .iter()
            .find(|&&(id, _)| opened.set.file(id).name() == wanted)
            .copied()
            .ok_or_else(|| Error::missing(format!("the package holds no member {member}")))?;
        let src = opened.set.file(id).clone();
        let stream = pkg
            .disks
            .iter()
            .find(|d| d.file == Some(id))
            .and_then(|d| d.stream.clone());
        write_atomically(output, |file| {
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0u64;
            loop {
                let n = match &stream {
                    Some(s) => s.read_some(at, &mut buf)?,
                    None => {
                        let n = (src.len() - at).min(buf.len() as u64) as usize;
                        block_on(src.read_at(at, &mut buf[..n]))?;
                        n
                    }
                };
                if n == 0 {
                    return Ok(());
                }
                file.write_all_at(&buf[..n], at)?;
                at += n as u64;
            }
        })
    }

    /// Run `write` on a new temporary file beside `output`, renamed into place only when it
    /// succeeded: a failed or interrupted write leaves nothing behind.
    fn write_atomically(
        output: &Path,
        write: impl FnOnce(&std::fs::File) -> Result<()>,
    ) -> Result<()> {
        let dir = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = output
            .file_name()
            .ok_or_else(|| Error::invalid(format!("bad output path {}", output.display())))?;
        let partial = dir.join(format!(
            ".{}.{}.vmdisk-partial",
            base.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(|e| Error::io(format!("{}: {e}", partial.display())))?;
        let result = write(&file).and_then(|()| {
            std::fs::rename(&partial, output)
                .map_err(|e| Error::io(format!("{}: {e}", output.display())))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    fn refuse_overwriting_inputs(output: &Path, inputs: &[PathBuf]) -> Result<()> {
        let Ok(out) = std::fs::metadata(output) else {
            return Ok(());
        };
        for input in inputs {
            if let Ok(m) = std::fs::metadata(input)
                && (m.dev(), m.ino()) == (out.dev(), out.ino())
            {
                return Err(Error::invalid(format!(
                    "output {} is one of the inputs",
                    output.display()
                )));
            }
        }
        Ok(())
    }

    /// Convert through a temporary file beside the output, renamed into place only on success.
    fn convert_to(
        opened: &OpenedImage,
        image: &dyn vmdisk::Image,
        opts: &WriteOptions,
        output: &Path,
        show: bool,
    ) -> Result<()> {
        write_atomically(output, |file| {
            let file = file.try_clone()?;
            with_bar(show, image.virtual_size(), |progress| {
                let mut sink = FileSink::new(file);
                let mut writer = vmdisk::writer::new_writer(opts, image.virtual_size())?;
                let pool = ThreadPool::new();
                block_on(vmdisk::engine::convert(
                    &opened.set,
                    image,
                    &mut *writer,
                    &mut sink,
                    &pool,
                    progress,
                ))?;
                block_on(vmdisk::Sink::finish(&mut sink))
            })
        })
    }
}
