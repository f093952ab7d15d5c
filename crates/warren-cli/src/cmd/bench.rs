//! `warren bench`: drives calls through a broker and prints throughput, latency
//! percentiles (HdrHistogram), errors by kind and CPU time per call for the client,
//! the workers and the broker. Client, workers and an embedded broker each run on a
//! tokio runtime of their own so that their CPU can be told apart (see `bench_cpu`).
//! Every run is bounded in count and in time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_rpc::services::calc::{CalcClient, CalcServer, Calculator};
use warren_rpc::{CallOptions, QueueSpec, ReplyMode, Request, Response, RpcClient, RpcServer};

use super::bench_cpu as cpu;
use super::bench_report::Summary;
use super::bench_setup::{bounds, new_histogram, on, summary, Job, Outcome, Runtimes};
pub use super::bench_setup::{Args, ClientKind};

/// Runs `warren bench`.
pub async fn run(args: Args) -> Result<(), String> {
    if args.in_flight == 0 || args.clients == 0 {
        return Err("--in-flight and --clients must be at least 1".to_owned());
    }
    if args.workers == 0 && args.queue.is_none() {
        return Err("with --workers 0, name the queue of a running server with --queue".to_owned());
    }
    let mut roles = cpu::Roles::new();
    let rts = Runtimes::new(args.threads)?;
    let given = args.url.clone();
    let embedded_tls = match (&args.embedded_tls_cert, &args.embedded_tls_key) {
        (Some(cert), Some(key)) => {
            Some(warren_broker::TlsOptions::from_files(cert, key).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let (broker, url) = on(&rts.broker, async move {
        super::broker_or(given.as_deref(), embedded_tls).await
    })
    .await??;
    roles.claim_new(cpu::BROKER);
    let measured = if args.raw {
        raw(&args, &url, &roles, &rts).await
    } else if args.client == ClientKind::Raw {
        super::bench_rpc_raw::run(&args, &url, &mut roles, &rts).await
    } else {
        rpc(&args, &url, &mut roles, &rts).await
    };
    if let Some(b) = broker {
        let _ = on(&rts.broker, async move { b.shutdown().await }).await;
    }
    rts.shutdown();
    let summary = measured?;
    if args.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.human());
    }
    Ok(())
}

/// `--raw`: the broker's one-queue ceiling, publisher and consumer on the client runtime.
async fn raw(
    args: &Args,
    url: &str,
    roles: &cpu::Roles,
    rts: &Runtimes,
) -> Result<Summary, String> {
    let (budget, run_for, bar) = bounds(args);
    let tick = bar.clone();
    let meter = cpu::Meter::start(roles, args.broker_pid);
    let started = Instant::now();
    let (url, in_flight, payload) = (url.to_owned(), args.in_flight, args.payload);
    let out = on(&rts.client, async move {
        super::bench_raw::run(
            &url,
            in_flight,
            payload,
            budget,
            run_for,
            new_histogram(),
            move || tick.inc(1),
        )
        .await
    })
    .await?;
    let elapsed = started.elapsed();
    let spent = meter.stop(roles);
    bar.finish_and_clear();
    let total = Outcome {
        latency: out?.latency,
        errors: BTreeMap::new(),
    };
    Ok(summary(args, total, elapsed, &spent))
}

/// RPC calls: echo (raw bytes) or typed `calc.add`, through the bench's own workers
/// unless `--workers 0`.
async fn rpc(
    args: &Args,
    url: &str,
    roles: &mut cpu::Roles,
    rts: &Runtimes,
) -> Result<Summary, String> {
    // A queue of our own goes away with our workers (auto-delete); one the user
    // named is declared as the tutorial does and left in place.
    let spec = match &args.queue {
        Some(name) => QueueSpec::tutorial(name.as_str()),
        None => {
            QueueSpec::tutorial(format!("warren-bench-{}", std::process::id())).auto_delete(true)
        }
    };
    let queue = spec.name.clone();
    let metrics = args.observe.then(warren_rpc::metrics::Metrics::new);
    let tls = args.tls.config().map_err(|e| e.to_string())?;
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let (metrics, tls) = (metrics.clone(), tls.clone());
        let (spec, url, concurrency, typed) = (
            spec.clone(),
            url.to_owned(),
            args.worker_concurrency,
            args.typed,
        );
        let server = on(&rts.worker, async move {
            let mut server = RpcServer::new().concurrency(concurrency);
            if let Some(m) = metrics {
                server = server.metrics(m);
            }
            if let Some(tls) = tls {
                server = server.tls(tls);
            }
            let server = if typed {
                server.serve(CalcServer::new(Calculator).queue(spec))
            } else {
                server.route(spec, |req: Request| async move {
                    Ok(Response::new(req.body, req.content_type))
                })
            };
            server.start(&url).await
        })
        .await?
        .map_err(|e| e.to_string())?;
        roles.claim_new(cpu::WORKER);
        workers.push(server);
    }
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let mode = if args.exclusive_reply_queue {
            ReplyMode::ExclusiveQueue
        } else {
            ReplyMode::DirectReplyTo
        };
        let (url, metrics, tls) = (url.to_owned(), metrics.clone(), tls.clone());
        let client = on(&rts.client, async move {
            let mut builder = RpcClient::builder().reply_mode(mode);
            if let Some(m) = metrics {
                builder = builder.metrics(m);
            }
            if let Some(tls) = tls {
                builder = builder.tls(tls);
            }
            builder.connect(url.as_str()).await
        })
        .await?;
        roles.claim_new(cpu::CLIENT);
        clients.push(client.map_err(|e| e.to_string())?);
    }
    let job = if args.typed {
        Job::Add
    } else {
        Job::Echo(match &args.body {
            Some(b) => b.as_bytes().into(),
            None => vec![b'x'; args.payload].into(),
        })
    };
    let (budget, run_for, bar) = bounds(args);
    let issued = Arc::new(AtomicU64::new(0));
    let meter = cpu::Meter::start(roles, args.broker_pid);
    let started = Instant::now();
    let stop_at = started + run_for;
    let mut tasks = Vec::new();
    for slot in 0..args.in_flight {
        let client = clients[slot % clients.len()].clone();
        let calc = CalcClient::with_queue(&client, queue.as_str());
        let (queue, job, issued, bar) =
            (queue.clone(), job.clone(), Arc::clone(&issued), bar.clone());
        tasks.push(rts.client.spawn(async move {
            let mut out = Outcome::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= stop_at || n >= budget {
                    break;
                }
                let t0 = Instant::now();
                let opts = CallOptions::new().timeout(Duration::from_secs(10));
                let done = match &job {
                    Job::Echo(body) => client
                        .call_with(&queue, &body[..], opts)
                        .await
                        .map(drop)
                        .map_err(|e| e.code().to_string()),
                    Job::Add => add(&calc, opts, n).await,
                };
                match done {
                    Ok(()) => {
                        let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let _ = out.latency.record(micros.max(1));
                    }
                    Err(kind) => *out.errors.entry(kind).or_default() += 1,
                }
                bar.inc(1);
            }
            out
        }));
    }
    let mut total = Outcome::new();
    for task in tasks {
        total.add(
            task.await
                .map_err(|e| format!("a bench task failed: {e}"))?,
        );
    }
    let elapsed = started.elapsed();
    let spent = meter.stop(roles);
    bar.finish_and_clear();
    for c in clients {
        let _ = on(&rts.client, async move { c.shutdown().await }).await;
    }
    for w in workers {
        let _ = on(&rts.worker, async move { w.shutdown().await }).await;
    }
    Ok(summary(args, total, elapsed, &spent))
}

/// One typed `calc.add` call, its answer checked (`wrong_answer` if it is not the sum).
async fn add(calc: &CalcClient, opts: CallOptions, n: u64) -> Result<(), String> {
    let a = i64::try_from(n % 1_000_000).unwrap_or(0);
    let b = 7;
    match calc.add_with(opts, a, b).await {
        Ok(sum) if sum == a + b => Ok(()),
        Ok(_) => Err("wrong_answer".to_owned()),
        Err(e) => Err(e.code().to_string()),
    }
}
