//! The wasmtime backend: one shared [`Engine`], a content-hash module cache
//! (in memory and precompiled on disk), `InstancePre`, the pooling allocator
//! and copy-on-write memory images, WASI preview 1 and the `fog` checkpoint
//! imports.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use wasmtime::{
    Caller, Config, Engine, Extern, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, I32Exit};

use crate::ExecError;
use crate::control::{StopCause, TaskControl};
use crate::spec::{FailureReason, Limits, ModuleHash, Output, TaskResult, WasmWorkload};

/// Settings of the shared wasmtime engine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WasmConfig {
    /// Directory of precompiled modules (`None`: memory cache only).
    pub cache_dir: Option<PathBuf>,
    /// Instances (and memories, tables, stacks) in the pooling allocator:
    /// the most WASM tasks alive at once. Further instantiations fail with
    /// a setup error until a slot frees.
    pub pool_instances: u32,
    /// Largest linear memory any task may get, in bytes.
    pub max_memory_bytes: u64,
    /// Compiled modules kept in memory; when full an arbitrary entry is
    /// dropped (it stays on disk).
    pub module_cache_entries: usize,
    /// Epoch tick: how often running guests check for pause, cancel,
    /// preempt and timeout.
    pub epoch_tick: Duration,
}

impl Default for WasmConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            pool_instances: 128,
            max_memory_bytes: 1 << 30,
            module_cache_entries: 256,
            epoch_tick: Duration::from_millis(1),
        }
    }
}

impl WasmConfig {
    /// Sets the on-disk precompiled module cache directory.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
    /// Sets the number of pooled instance slots.
    pub fn with_pool_instances(mut self, n: u32) -> Self {
        self.pool_instances = n.max(1);
        self
    }
}

/// Guest-visible checkpoint sink: persists a checkpoint and returns its
/// sequence number.
pub(crate) type CheckpointSink = Arc<
    dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Result<u64, ExecError>> + Send>> + Send + Sync,
>;

/// Everything a run needs beyond the workload and limits.
#[derive(Default)]
pub(crate) struct RunContext {
    pub(crate) work_dir: Option<PathBuf>,
    pub(crate) seed: u64,
    pub(crate) checkpoint: Option<Vec<u8>>,
    pub(crate) control: Option<Arc<TaskControl>>,
    pub(crate) sink: Option<CheckpointSink>,
    /// Fuel consumed by earlier attempts (added to this run's count).
    pub(crate) fuel_before: u64,
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum RunEnd {
    Finished(TaskResult),
    Stopped { cause: StopCause, fuel: u64 },
}

struct MemoryLimiter {
    limit: u64,
    refused: Option<u64>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.refused = Some(desired as u64);
            return Err(wasmtime::format_err!(
                "memory limit: grow to {desired} bytes refused (limit {} bytes)",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

pub(crate) struct GuestState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
    control: Option<Arc<TaskControl>>,
    checkpoint: Option<Vec<u8>>,
    checkpoint_limit: usize,
    sink: Option<CheckpointSink>,
    started: Instant,
    timeout: Duration,
    stop: Option<StopCause>,
    ticks: u32,
}

/// A guest wall clock that always reads the same instant, so replicas agree.
struct FixedWallClock;

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        // 2025-01-01T00:00:00Z.
        Duration::from_hours(482_136)
    }
}

/// A guest monotonic clock that advances one microsecond per reading.
struct CountingClock(Mutex<u64>);

impl HostMonotonicClock for CountingClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        let mut n = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *n += 1_000;
        *n
    }
}

struct Inner {
    engine: Engine,
    linker: Linker<GuestState>,
    cache: Mutex<HashMap<ModuleHash, InstancePre<GuestState>>>,
    config: WasmConfig,
    compat: u64,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// The shared wasmtime engine with its module cache. Cheap to clone.
#[derive(Clone)]
pub struct WasmEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl WasmEngine {
    /// Builds the engine: fuel and epoch interruption on, NaN
    /// canonicalization and deterministic relaxed SIMD (replicas agree bit
    /// for bit), pooling allocator with copy-on-write memory images.
    pub fn new(config: WasmConfig) -> Result<Self, ExecError> {
        let mut c = Config::new();
        c.consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .memory_init_cow(true)
            .max_wasm_stack(1 << 20);
        let n = config.pool_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(n)
            .total_memories(n)
            .total_tables(n)
            .total_stacks(n)
            .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
            // Small tasks reuse warm pages (reset by memset) instead of a
            // madvise and fresh page faults per instance.
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10)
            .async_stack_keep_resident(16 << 10)
            .decommit_batch_size(8);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&c).map_err(|e| ExecError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut GuestState| &mut s.wasi)
            .map_err(|e| ExecError::Engine(format!("{e:#}")))?;
        add_fog_imports(&mut linker).map_err(|e| ExecError::Engine(format!("{e:#}")))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hasher.finish();
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| ExecError::io(dir, &e))?;
        }
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            let tick = config.epoch_tick.max(Duration::from_micros(100));
            std::thread::Builder::new()
                .name("fog-exec-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| ExecError::Engine(format!("epoch thread: {e}")))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache: Mutex::new(HashMap::new()),
                config,
                compat,
                ticker_stop,
            }),
        })
    }

    /// Compiles (or loads from the caches) a module and checks its imports,
    /// returning its content hash.
    pub fn prepare(&self, module: &[u8]) -> Result<ModuleHash, ExecError> {
        let hash = ModuleHash::of(module);
        self.instance_pre(hash, module)?;
        Ok(hash)
    }

    pub(crate) fn prepare_workload(&self, workload: &WasmWorkload) -> Result<(), ExecError> {
        self.instance_pre(workload.hash, &workload.module)
            .map(|_| ())
    }

    /// Whether the module can open files at all (imports `path_open`): only
    /// then does its task get a work directory on disk.
    pub(crate) fn uses_files(&self, workload: &WasmWorkload) -> Result<bool, ExecError> {
        let pre = self.instance_pre(workload.hash, &workload.module)?;
        Ok(pre
            .module()
            .imports()
            .any(|i| i.module() == "wasi_snapshot_preview1" && i.name() == "path_open"))
    }

    fn cached(&self, hash: ModuleHash) -> Option<InstancePre<GuestState>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&hash)
            .cloned()
    }

    fn instance_pre(
        &self,
        hash: ModuleHash,
        bytes: &[u8],
    ) -> Result<InstancePre<GuestState>, ExecError> {
        if let Some(pre) = self.cached(hash) {
            return Ok(pre);
        }
        let module = self.load_or_compile(hash, bytes)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| ExecError::InvalidModule(format!("{e:#}")))?;
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= self.inner.config.module_cache_entries.max(1)
            && let Some(victim) = cache.keys().next().copied()
        {
            cache.remove(&victim);
        }
        cache.insert(hash, pre.clone());
        Ok(pre)
    }

    fn artifact_path(&self, dir: &Path, hash: ModuleHash) -> PathBuf {
        dir.join(format!(
            "{}-{:016x}.cwasm",
            hash.to_hex(),
            self.inner.compat
        ))
    }

    fn load_or_compile(&self, hash: ModuleHash, bytes: &[u8]) -> Result<Module, ExecError> {
        let engine = &self.inner.engine;
        let Some(dir) = &self.inner.config.cache_dir else {
            return Module::new(engine, bytes)
                .map_err(|e| ExecError::InvalidModule(format!("{e:#}")));
        };
        let path = self.artifact_path(dir, hash);
        if matches!(
            Engine::detect_precompiled_file(&path),
            Ok(Some(wasmtime::Precompiled::Module))
        ) {
            #[allow(unsafe_code)]
            // SAFETY: the artifact is only ever written by `load_or_compile`
            // below, from `Module::serialize` of this same engine
            // configuration, into our own cache directory, under a name that
            // carries the SHA-256 of the source module and the engine's
            // compatibility hash, and it is renamed into place only once fully
            // written. wasmtime also checks its header and version on load.
            let loaded = unsafe { Module::deserialize_file(engine, &path) };
            match loaded {
                Ok(module) => return Ok(module),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "dropping unreadable precompiled module");
                }
            }
        }
        let module =
            Module::new(engine, bytes).map_err(|e| ExecError::InvalidModule(format!("{e:#}")))?;
        match module.serialize() {
            Ok(artifact) => {
                // Unique per writer: two tasks may compile the same module at once.
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
                let written =
                    std::fs::write(&tmp, &artifact).and_then(|()| std::fs::rename(&tmp, &path));
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(path = %path.display(), error = %e, "could not store precompiled module");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not serialize module"),
        }
        Ok(module)
    }

    /// Runs a WASM workload to completion on the current tokio runtime
    /// (no work directory, no persistence): the engine alone.
    pub async fn run(
        &self,
        workload: &WasmWorkload,
        limits: &Limits,
    ) -> Result<TaskResult, ExecError> {
        match self
            .run_with(workload, limits, RunContext::default())
            .await?
        {
            RunEnd::Finished(result) => Ok(result),
            RunEnd::Stopped { cause, .. } => Err(ExecError::Engine(format!(
                "run stopped unexpectedly ({cause:?})"
            ))),
        }
    }

    pub(crate) async fn run_with(
        &self,
        workload: &WasmWorkload,
        limits: &Limits,
        ctx: RunContext,
    ) -> Result<RunEnd, ExecError> {
        let started = Instant::now();
        let hash = workload.module_hash();
        let pre = match self.instance_pre(hash, &workload.module) {
            Ok(pre) => pre,
            Err(ExecError::InvalidModule(message)) => {
                return Ok(RunEnd::Finished(TaskResult::new(
                    None,
                    Some(FailureReason::Setup { message }),
                    Output::default(),
                    ctx.fuel_before,
                    started.elapsed(),
                )));
            }
            Err(e) => return Err(e),
        };
        let stdout = MemoryOutputPipe::new(limits.stdout_bytes.saturating_add(1));
        let stderr = MemoryOutputPipe::new(limits.stderr_bytes.saturating_add(1));
        let mut builder = wasmtime_wasi::WasiCtxBuilder::new();
        let mut argv = Vec::with_capacity(workload.args.len() + 1);
        argv.push("task".to_owned());
        argv.extend(workload.args.iter().cloned());
        builder
            .args(&argv)
            .envs(&workload.env)
            .stdin(MemoryInputPipe::new(workload.stdin.clone()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .secure_random(StdRng::seed_from_u64(ctx.seed))
            .insecure_random(StdRng::seed_from_u64(ctx.seed ^ 0x5eed))
            .insecure_random_seed(u128::from(ctx.seed))
            .wall_clock(FixedWallClock)
            .monotonic_clock(CountingClock(Mutex::new(0)))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(dir) = &ctx.work_dir {
            builder
                .preopened_dir(dir, "/work", FsPerms::ReadWrite)
                .map_err(|e| ExecError::Engine(format!("preopen work dir: {e:#}")))?;
        }
        let state = GuestState {
            wasi: builder.build_p1(),
            limiter: MemoryLimiter {
                limit: limits.memory_bytes,
                refused: None,
            },
            control: ctx.control.clone(),
            checkpoint: ctx.checkpoint,
            checkpoint_limit: limits.checkpoint_bytes,
            sink: ctx.sink,
            started,
            timeout: limits.timeout,
            stop: None,
            ticks: 0,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        let budget = limits.fuel.unwrap_or(u64::MAX);
        store
            .set_fuel(budget)
            .map_err(|e| ExecError::Engine(format!("{e:#}")))?;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(epoch_check);

        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        };
        // Backstop for a guest parked in a host call: the epoch callback is
        // the primary timeout, this one only fires if it cannot.
        let outcome = {
            let mut run = std::pin::pin!(run);
            loop {
                let paused = ctx
                    .control
                    .as_ref()
                    .map_or(Duration::ZERO, |c| c.paused_for());
                let due = started + limits.timeout + paused + Duration::from_secs(1);
                tokio::select! {
                    done = &mut run => break Ok(done),
                    () = tokio::time::sleep_until(due.into()) => {
                        let paused_now = ctx.control.as_ref().map_or(Duration::ZERO, |c| c.paused_for());
                        if paused_now == paused {
                            break Err(());
                        }
                    }
                }
            }
        };
        let fuel_left = store.get_fuel().unwrap_or(0);
        let fuel = ctx
            .fuel_before
            .saturating_add(budget.saturating_sub(fuel_left));
        let data = store.data();
        let (exit_code, failure) = match outcome {
            Err(_elapsed) => (
                None,
                Some(FailureReason::Timeout {
                    millis: millis(limits.timeout),
                }),
            ),
            Ok(Ok(())) => (Some(0), None),
            Ok(Err(error)) => {
                if let Some(cause) = data.stop {
                    match cause {
                        StopCause::Timeout => (
                            None,
                            Some(FailureReason::Timeout {
                                millis: millis(limits.timeout),
                            }),
                        ),
                        other => return Ok(RunEnd::Stopped { cause: other, fuel }),
                    }
                } else if let Some(requested) = data.limiter.refused {
                    (
                        None,
                        Some(FailureReason::MemoryLimit {
                            requested,
                            limit: limits.memory_bytes,
                        }),
                    )
                } else if let Some(exit) = error.downcast_ref::<I32Exit>() {
                    if exit.0 == 0 {
                        (Some(0), None)
                    } else {
                        (
                            Some(exit.0),
                            Some(FailureReason::NonZeroExit { code: exit.0 }),
                        )
                    }
                } else if matches!(error.downcast_ref::<Trap>(), Some(Trap::OutOfFuel)) {
                    (None, Some(FailureReason::OutOfFuel { fuel: budget }))
                } else if error.downcast_ref::<Trap>().is_some() {
                    (
                        None,
                        Some(FailureReason::Trap {
                            message: format!("{error:#}"),
                        }),
                    )
                } else {
                    (
                        None,
                        Some(FailureReason::Setup {
                            message: format!("{error:#}"),
                        }),
                    )
                }
            }
        };
        drop(store);
        let output = capture(&stdout, &stderr, limits);
        Ok(RunEnd::Finished(TaskResult::new(
            exit_code,
            failure,
            output,
            fuel,
            started.elapsed(),
        )))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn capture(stdout: &MemoryOutputPipe, stderr: &MemoryOutputPipe, limits: &Limits) -> Output {
    let cut = |pipe: &MemoryOutputPipe, cap: usize| {
        let mut bytes = pipe.contents().to_vec();
        let truncated = bytes.len() > cap;
        bytes.truncate(cap);
        (bytes, truncated)
    };
    let (stdout, stdout_truncated) = cut(stdout, limits.stdout_bytes);
    let (stderr, stderr_truncated) = cut(stderr, limits.stderr_bytes);
    Output {
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
    }
}

/// Epoch ticks between two voluntary yields of a running guest.
const YIELD_EVERY_TICKS: u32 = 10;

/// Called at every epoch tick while a guest runs: pause, stop, timeout.
fn epoch_check(
    mut ctx: wasmtime::StoreContextMut<'_, GuestState>,
) -> wasmtime::Result<UpdateDeadline> {
    let state = ctx.data_mut();
    let paused_for = state
        .control
        .as_ref()
        .map_or(Duration::ZERO, |c| c.paused_for());
    if state.started.elapsed().saturating_sub(paused_for) > state.timeout {
        state.stop = Some(StopCause::Timeout);
        return Err(wasmtime::format_err!("wall-clock timeout"));
    }
    if let Some(control) = &state.control {
        if let Some(cause) = control.stop_requested() {
            state.stop = Some(cause);
            return Err(wasmtime::format_err!("stopped by the executor"));
        }
        if control.is_paused() {
            return Ok(UpdateDeadline::YieldCustom(1, Box::pin(control.unpaused())));
        }
    }
    // Hand the thread back to the async runtime now and then, so that a
    // long guest neither starves other tasks nor outlives a dropped run.
    state.ticks = state.ticks.wrapping_add(1);
    if state.ticks.is_multiple_of(YIELD_EVERY_TICKS) {
        return Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ));
    }
    Ok(UpdateDeadline::Continue(1))
}

fn guest_memory<'a>(
    caller: &'a mut Caller<'_, GuestState>,
) -> wasmtime::Result<(wasmtime::Memory, &'a mut GuestState)> {
    let memory = caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| wasmtime::format_err!("fog imports need an exported `memory`"))?;
    Ok((memory, caller.data_mut()))
}

/// The `fog` import module:
/// - `checkpoint_save(ptr, len) -> i32`: persists `len` bytes; returns 0, or
///   -1 if over the checkpoint size limit;
/// - `checkpoint_load(ptr, cap) -> i32`: copies the last checkpoint (at most
///   `cap` bytes) and returns its full length, or -1 if there is none;
/// - `checkpoint_requested() -> i32`: 1 once if the host asked for a
///   checkpoint (checkpoint-now or before a preemption), else 0.
fn add_fog_imports(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "fog",
        "checkpoint_save",
        |mut caller: Caller<'_, GuestState>, (ptr, len): (i32, i32)| {
            Box::new(async move {
                let (memory, _) = guest_memory(&mut caller)?;
                let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
                if len > caller.data().checkpoint_limit {
                    return Ok(-1i32);
                }
                let data = memory
                    .data(&caller)
                    .get(ptr..ptr.saturating_add(len))
                    .ok_or_else(|| wasmtime::format_err!("checkpoint_save: out of bounds"))?
                    .to_vec();
                if let Some(sink) = caller.data().sink.clone() {
                    sink(data.clone())
                        .await
                        .map_err(|e| wasmtime::format_err!("checkpoint_save: {e}"))?;
                }
                caller.data_mut().checkpoint = Some(data);
                Ok(0i32)
            })
        },
    )?;
    linker.func_wrap(
        "fog",
        "checkpoint_load",
        |mut caller: Caller<'_, GuestState>, ptr: i32, cap: i32| -> wasmtime::Result<i32> {
            let (memory, state) = guest_memory(&mut caller)?;
            let Some(data) = state.checkpoint.clone() else {
                return Ok(-1);
            };
            let (ptr, cap) = (ptr as u32 as usize, cap as u32 as usize);
            let n = data.len().min(cap);
            memory
                .data_mut(&mut caller)
                .get_mut(ptr..ptr.saturating_add(n))
                .ok_or_else(|| wasmtime::format_err!("checkpoint_load: out of bounds"))?
                .copy_from_slice(&data[..n]);
            Ok(i32::try_from(data.len()).unwrap_or(i32::MAX))
        },
    )?;
    linker.func_wrap(
        "fog",
        "checkpoint_requested",
        |caller: Caller<'_, GuestState>| -> i32 {
            i32::from(
                caller
                    .data()
                    .control
                    .as_ref()
                    .is_some_and(|c| c.take_checkpoint_request()),
            )
        },
    )?;
    Ok(())
}
