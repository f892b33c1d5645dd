//! Places a service's tasks on a large cluster through the service reconciler's own
//! placement path (`berth_control::services::starts::place_new_tasks`: one placement
//! round, each task seeing the ones before it) and reports how long it took.
//!
//! Usage: `berth-bench-placement [--tasks 10000] [--instances 1000] [--rounds 5]`.
//! Prints one markdown table row per run and a summary line; exits non-zero when a
//! run did not place every task, put one on a batch instance, or left the zones
//! unbalanced by more than one task.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_benches::placement;
use berth_control::services::starts::{place_new_tasks, StartRequest};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Times berth's placement of many tasks on many instances")]
struct Args {
    /// Tasks to place.
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Container instances in the cluster.
    #[arg(long, default_value_t = 1_000)]
    instances: usize,
    /// Times to repeat the whole placement (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let instances = placement::instances(args.instances);
    let td = placement::task_definition();
    let service = placement::service(args.tasks);
    let definitions = [(td.task_definition_arn.clone(), td.clone())]
        .into_iter()
        .collect();
    let req = StartRequest {
        service: &service,
        task_definition: &td,
        cluster: "default",
        group: "service:web",
        deployment_id: "ecs-svc/1",
        count: args.tasks,
        now: 0.0,
        placement_seed: 1,
    };
    println!(
        "| run | tasks | instances | placed | time | per task | zones (tasks) | instances used |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|---:|");
    let mut times = Vec::new();
    for run in 1..=args.rounds.max(1) {
        let mut next = 0u64;
        let mut new_id = || {
            next += 1;
            format!("{next:032x}")
        };
        let start = Instant::now();
        let (tasks, failure) = place_new_tasks(&req, &instances, &[], &definitions, &mut new_id);
        let took = start.elapsed();
        times.push(took);
        let out = placement::outcome(&instances, &tasks);
        let zones: Vec<String> = out.per_zone.values().map(usize::to_string).collect();
        println!(
            "| {run} | {} | {} | {} | {:.1} ms | {:.1} µs | {} | {} |",
            args.tasks,
            args.instances,
            tasks.len(),
            ms(took),
            ms(took) * 1000.0 / args.tasks.max(1) as f64,
            zones.join(" / "),
            out.instances_used,
        );
        if let Some(f) = failure {
            bail!(
                "run {run} placed {} of {} tasks: {}",
                tasks.len(),
                args.tasks,
                f.0
            );
        }
        if out.on_batch > 0 {
            bail!("run {run} put {} tasks on batch instances", out.on_batch);
        }
        let (min, max) = (
            out.per_zone.values().min().copied().unwrap_or(0),
            out.per_zone.values().max().copied().unwrap_or(0),
        );
        if max - min > 1 {
            bail!("run {run} left the zones unbalanced: {:?}", out.per_zone);
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    println!();
    println!(
        "median of {} runs: {:.1} ms for {} tasks on {} instances ({}build)",
        times.len(),
        ms(median),
        args.tasks,
        args.instances,
        if cfg!(debug_assertions) {
            "debug "
        } else {
            "release "
        },
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
