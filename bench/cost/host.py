"""A mock proxy-wasm host (ABI 0.2.1, as Envoy 1.40's proxy-wasm-cpp-host answers) running a module
under wasmtime with fuel on: what the module executes, counted exactly.

Fuel is wasmtime's count of wasm instructions executed (a few structural ones, `nop`, `block`,
`end`..., are free), the same for the same module and inputs: a figure that moves only when the
module's work does. Everything else is tallied at the boundary: each host call by name, the bytes
the host copies into the VM (header maps, properties, buffers) and reads out of it (metric names,
property paths, log lines), each entry into the VM (the callbacks Envoy makes; the allocations it
makes to hand data over are counted apart), linear memory pages.

Envoy's behaviour mirrored here (proxy-wasm-cpp-host's src/wasm.cc, context.cc, exports.cc):
- start: `_initialize` if exported, then `proxy_on_context_create(root, 0)`,
  `proxy_on_vm_start(root, vm_config_size)`, `proxy_on_configure(root, plugin_config_size)`;
- a request: `proxy_on_context_create(ctx, root)`, then each of `proxy_on_request_headers`,
  `proxy_on_request_body`, `proxy_on_response_headers`, `proxy_on_response_body`,
  `proxy_on_log`, `proxy_on_done`, `proxy_on_delete` only if the module exports it;
- data handed over is allocated in the VM with `malloc`, else `proxy_on_memory_allocate`
  (nothing allocated for empty data: pointer 0, size 0); header maps serialized as pairs
  (u32 count, u32 sizes, NUL-terminated names and values); properties as Envoy's CEL values
  (integers 8 bytes little-endian, strings raw); `proxy_define_metric` a new id on every call;
  shared data with CAS.
- roots and timers (Envoy's wasm.cc, proxy-wasm-cpp-host's exports.cc): every root is a context
  of its own with its plugin's properties; a callback's host calls act on its context, or on the
  one `proxy_set_effective_context` names (BadArgument for a context that no longer exists; reset
  at each entry); `proxy_set_tick_period_milliseconds` sets the period of that context's root's
  timer and arms it one period from now only if it was not running (a running timer keeps the
  fire it has armed; period 0 leaves that one fire, then none); a fired timer enters
  `proxy_on_tick` only if its root still exists, and is re-armed one period after it fired (no
  catch-up, period 0: not) either way: a deleted root's timer is never erased. Deleting a root calls `proxy_on_done`/`proxy_on_delete` only if exported (without
  `proxy_on_done`, done is assumed: the root is erased silently). Time is simulated: a wall clock
  (`proxy_get_current_time_nanoseconds`, WASI clock 0) and a monotonic one (WASI clock 1) that
  move together, by `advance` and `run_for`.
An import the host does not know traps with its name: a new host call shows up as a failure.
"""

import struct
from collections import Counter
from dataclasses import dataclass, field

import wasmtime

OK, NOT_FOUND, BAD_ARGUMENT, INVALID_MEMORY_ACCESS, CAS_MISMATCH = 0, 1, 2, 6, 8
MAP_REQUEST, MAP_RESPONSE, MAP_CALL_RESPONSE = 0, 2, 6
BUFFER_REQUEST_BODY, BUFFER_RESPONSE_BODY, BUFFER_CALL_RESPONSE_BODY, BUFFER_PLUGIN_CONFIG = 0, 1, 4, 7
FUEL = 1 << 62
SECOND = 1_000_000_000
PAGE = 65536
# Callbacks Envoy makes per request, in its order, each only if exported.
REQUEST_CALLBACKS = ("proxy_on_request_headers", "proxy_on_request_body", "proxy_on_response_headers",
                     "proxy_on_response_body", "proxy_on_log", "proxy_on_done", "proxy_on_delete")

_ENGINES = {}


def engine_and_module(path):
    """One engine and compiled module per file: compiling is most of a probe's time."""
    key = str(path)
    if key not in _ENGINES:
        config = wasmtime.Config()
        config.consume_fuel = True
        engine = wasmtime.Engine(config)
        _ENGINES[key] = (engine, wasmtime.Module.from_file(engine, key))
    return _ENGINES[key]


def serialize_pairs(pairs):
    """proxy-wasm's header map layout (pairs_util.cc)."""
    out = [struct.pack("<I", len(pairs))]
    for name, value in pairs:
        out.append(struct.pack("<II", len(name), len(value)))
    for name, value in pairs:
        out.append(name.encode() + b"\0" + value.encode() + b"\0")
    return b"".join(out)


def parse_pairs(data):
    (n,) = struct.unpack_from("<I", data, 0)
    sizes = [struct.unpack_from("<II", data, 4 + 8 * i) for i in range(n)]
    pos, pairs = 4 + 8 * n, []
    for k, v in sizes:
        name = data[pos:pos + k]
        pos += k + 1
        value = data[pos:pos + v]
        pos += v + 1
        pairs.append((name.decode(), value.decode()))
    return pairs


@dataclass
class Tally:
    """What the module cost, from some point on."""
    instructions: int = 0
    calls: Counter = field(default_factory=Counter)
    entries: Counter = field(default_factory=Counter)
    allocs: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    timer_fires: int = 0  # host-side: a root's timer fired, whether or not the VM was entered

    def minus(self, other):
        return Tally(self.instructions - other.instructions, self.calls - other.calls,
                     self.entries - other.entries, self.allocs - other.allocs,
                     self.bytes_in - other.bytes_in, self.bytes_out - other.bytes_out,
                     self.timer_fires - other.timer_fires)

    def copy(self):
        return Tally(self.instructions, Counter(self.calls), Counter(self.entries), self.allocs,
                     self.bytes_in, self.bytes_out, self.timer_fires)


@dataclass
class Exchange:
    """One request as Envoy holds it. Maps are lists of (name, value) in Envoy's order;
    `request_at_headers` is the request map the request-headers callback sees (before the
    router adds its own headers)."""
    name: str
    request: list
    response: list | None
    request_body: bytes = b""
    response_body: bytes = b""
    duration_ns: int = 5_000_000
    details: str = "via_upstream"
    request_at_headers: list | None = None


class Host:
    def __init__(self, wasm_path, configuration=b"", plugin_name="app_metrics",
                 root_id="app_metrics", vm_configuration=b"", trace=None):
        engine, module = engine_and_module(wasm_path)
        self.store = wasmtime.Store(engine)
        self.store.set_fuel(FUEL)
        self.plugin_name, self.root_id = plugin_name, root_id
        self.configuration, self.vm_configuration = configuration, vm_configuration
        self.tally = Tally()
        self.trace = trace  # a list: (fuel, event) appended at each boundary crossing
        self.logs = []
        self.metrics = {}  # id -> [kind, name, value or list of records]
        self.shared = {}  # key -> (value, cas)
        self.cas = 0
        self.calls_out = []  # proxy_http_call: (token, cluster, headers, root)
        self.call_answer = ("200", b'{"count": 42}')  # what the samplers' calls are answered
        self.clock_ns = 1_780_000_000_000_000_000  # wall clock
        self.monotonic_ns = 1_000_000 * SECOND  # Envoy's steady clock: time since some boot
        self.maps = {}
        self.buffers = {}
        self.properties = {}  # the request's attributes (the plugin's come from its root)
        self.next_context = 1
        self.contexts = {}  # live context id -> its root's id (a root's is its own)
        self.roots = {}  # live root id -> its plugin's properties
        self.current = self.effective = 0  # the context of the callback running, and set effective
        self.timers = {}  # root id -> [period ms, due at (monotonic ns) or None]; never erased
        linker = wasmtime.Linker(engine)
        for imp in module.imports:
            linker.define_func(imp.module, imp.name, imp.type, self._import(imp.module, imp.name),
                               access_caller=True)
        self.instance = linker.instantiate(self.store, module)
        exports = self.instance.exports(self.store)
        self.memory = exports["memory"]
        self.exported = {x.name for x in module.exports}
        self.functions = {name: exports[name] for name in self.exported
                          if isinstance(exports[name], wasmtime.Func)}
        self.malloc = self.functions.get("malloc") or self.functions["proxy_on_memory_allocate"]

    # ---- the VM's side -----------------------------------------------------------------------

    def fuel_used(self):
        return FUEL - self.store.get_fuel()

    def snapshot(self):
        t = self.tally.copy()
        t.instructions = self.fuel_used()
        return t

    def pages(self):
        return self.memory.size(self.store)

    def _mark(self, event):
        if self.trace is not None:
            self.trace.append((self.fuel_used(), event))

    def enter(self, name, *args):
        """A callback, if the module exports it (Envoy skips those it does not). Its first
        argument is the context it is about; host calls act on that one (or the effective)."""
        f = self.functions.get(name)
        if f is None:
            return None
        self.tally.entries[name] += 1
        saved = self.current, self.effective
        self.current, self.effective = (args[0] if args else 0), 0
        self._mark(f"enter {name}")
        try:
            return f(self.store, *args)
        finally:
            self._mark(f"leave {name}")
            self.current, self.effective = saved

    def start(self):
        """What Envoy does with a new VM and a plugin: returns whether configure succeeded."""
        self.enter("_initialize")
        self.root, ok = self.add_root(self.configuration, self.plugin_name, self.root_id)
        return ok

    def add_root(self, configuration, plugin_name, root_id=None):
        """A plugin (configuration) in this VM, as Envoy starts one: a root context created,
        started, configured. Returns the root's id and whether configure succeeded."""
        root = self.new_context(None)
        self.roots[root] = {"plugin_name": plugin_name.encode(),
                            "plugin_root_id": (root_id or plugin_name).encode()}
        self.enter("proxy_on_context_create", root, 0)
        self.enter("proxy_on_vm_start", root, len(self.vm_configuration))
        self.buffers = {BUFFER_PLUGIN_CONFIG: configuration}
        ok = self.enter("proxy_on_configure", root, len(configuration))
        self.buffers = {}
        return root, ok

    def delete_root(self, root):
        """Envoy releases a plugin (its configuration replaced, its last stream ended): done,
        delete, erased; its timer stays. (A module answering not done would keep it until it
        calls `proxy_done`: not modelled, this one exports no `proxy_on_done`.)"""
        if self.enter("proxy_on_done", root) in (None, 1):
            self.enter("proxy_on_delete", root)
            del self.roots[root], self.contexts[root]

    def new_context(self, root):
        """A context id, as Envoy allocates them (increasing); `root` None: a root's own."""
        ctx = self.next_context
        self.next_context += 1
        self.contexts[ctx] = ctx if root is None else root
        return ctx

    def advance(self, ns):
        self.clock_ns += ns
        self.monotonic_ns += ns

    def run_for(self, seconds):
        """Time passes: each timer due fires at its time, in order (equal times: older root
        first), then the clock reaches the end."""
        end = self.monotonic_ns + round(seconds * SECOND)
        while True:
            due = [(at, root) for root, (_, at) in self.timers.items() if at is not None and at <= end]
            if not due:
                break
            at, root = min(due)
            self.advance(at - self.monotonic_ns)
            self.fire(root)
        self.advance(end - self.monotonic_ns)

    def fire(self, root):
        """A root's timer fires (Envoy's tickHandler): the tick if the root exists, the samplers'
        calls it made answered; re-armed one period on."""
        self.tally.timer_fires += 1
        if root in self.roots:
            self.enter("proxy_on_tick", root)
            self.answer_calls()
        period = self.timers[root][0]
        self.timers[root][1] = self.monotonic_ns + period * 1_000_000 if period else None

    def answer_calls(self):
        """Each call out answered, to its root if it still exists (Envoy cancels a deleted
        root's calls)."""
        status, body = self.call_answer
        calls, self.calls_out = self.calls_out, []
        for token, _, _, root in calls:
            if root not in self.roots:
                continue
            self.maps = {MAP_CALL_RESPONSE: [(":status", status),
                                             ("content-type", "application/json"),
                                             ("content-length", str(len(body))),
                                             ("x-envoy-upstream-service-time", "2")]}
            self.buffers = {BUFFER_CALL_RESPONSE_BODY: body}
            self.enter("proxy_on_http_call_response", root, token, 4, len(body), 0)
        self.maps, self.buffers = {}, {}

    def exchange(self, ex, root=None):
        """One request through the callbacks Envoy makes, as it makes them, under `root` (the
        first plugin's by default)."""
        root = root or self.root
        ctx = self.new_context(root)
        self.maps, self.buffers = {}, {}
        self.enter("proxy_on_context_create", ctx, root)
        self.maps[MAP_REQUEST] = ex.request_at_headers or ex.request
        has_body = bool(ex.request_body)
        self.enter("proxy_on_request_headers", ctx, len(self.maps[MAP_REQUEST]), int(not has_body))
        if has_body:
            self.buffers[BUFFER_REQUEST_BODY] = ex.request_body
            self.enter("proxy_on_request_body", ctx, len(ex.request_body), 1)
        self.maps[MAP_REQUEST] = ex.request
        self.advance(ex.duration_ns)
        if ex.response is not None:
            self.maps[MAP_RESPONSE] = ex.response
            has_body = bool(ex.response_body)
            self.enter("proxy_on_response_headers", ctx, len(ex.response), int(not has_body))
            if has_body:
                self.buffers = {BUFFER_RESPONSE_BODY: ex.response_body}
                self.enter("proxy_on_response_body", ctx, len(ex.response_body), 1)
        self.buffers = {}
        status = dict(ex.response or []).get(":status")
        self.properties.update({
            "request.duration": struct.pack("<q", ex.duration_ns),
            "response.code_details": ex.details.encode(),
        })
        if status is not None:
            self.properties["response.code"] = struct.pack("<q", int(status))
        self.enter("proxy_on_log", ctx)
        self.enter("proxy_on_done", ctx)
        self.enter("proxy_on_delete", ctx)
        del self.contexts[ctx]
        self.maps, self.properties = {}, {}
        self.advance(1_000_000)

    def tick(self):
        """A second passes: the timers due fire (the first plugin's, set to a second when it
        was configured), their sampler calls answered."""
        self.run_for(1.0)

    # ---- the host's side ---------------------------------------------------------------------

    def _read(self, caller, ptr, size):
        if size == 0:
            return b""
        data = bytes(self.memory.read(caller, ptr, ptr + size))
        self.tally.bytes_out += size
        return data

    def _put_u32(self, caller, ptr, value):
        self.memory.write(caller, struct.pack("<I", value), ptr)

    def _hand_over(self, caller, data, ptr_ptr, size_ptr):
        """copyToPointerSize: allocate in the VM through its malloc, copy, return both words."""
        pointer = 0
        if data:
            self.tally.allocs += 1
            self._mark("enter malloc")
            pointer = self.malloc(caller, len(data))
            self._mark("leave malloc")
            if pointer == 0:
                # What proxy-wasm-cpp-host answers when the VM cannot have the memory.
                return INVALID_MEMORY_ACCESS
            self.memory.write(caller, data, pointer)
            self.tally.bytes_in += len(data)
        self._put_u32(caller, ptr_ptr, pointer)
        self._put_u32(caller, size_ptr, len(data))
        return OK

    def _import(self, module, name):
        own = getattr(self, f"_h_{name}", None)

        def call(caller, *args):
            self.tally.calls[name] += 1
            self._mark(f"call {name}")
            if own is None:
                raise RuntimeError(f"the probe's host does not implement {module}.{name}")
            return own(caller, *args)
        return call

    # proxy-wasm

    def _h_proxy_log(self, caller, level, ptr, size):
        self.logs.append((level, self._read(caller, ptr, size).decode(errors="replace")))
        return OK

    def _h_proxy_get_current_time_nanoseconds(self, caller, ptr):
        self.memory.write(caller, struct.pack("<Q", self.clock_ns), ptr)
        return OK

    def _acting(self):
        """The context a host call acts on."""
        return self.effective or self.current

    def _h_proxy_set_effective_context(self, caller, context):
        if context not in self.contexts:
            return BAD_ARGUMENT
        self.effective = context
        return OK

    def _h_proxy_set_tick_period_milliseconds(self, caller, period):
        root = self.contexts[self._acting()]
        timer = self.timers.setdefault(root, [0, None])
        was_running = timer[0] > 0
        timer[0] = period
        if period > 0 and not was_running:
            timer[1] = self.monotonic_ns + period * 1_000_000
        return OK

    def _h_proxy_get_header_map_pairs(self, caller, kind, ptr_ptr, size_ptr):
        pairs = self.maps.get(kind)
        if pairs is None:
            return NOT_FOUND
        return self._hand_over(caller, serialize_pairs(pairs) if pairs else b"", ptr_ptr, size_ptr)

    def _h_proxy_get_header_map_value(self, caller, kind, key_ptr, key_size, ptr_ptr, size_ptr):
        key = self._read(caller, key_ptr, key_size).decode()
        for name, value in self.maps.get(kind) or []:
            if name == key:
                return self._hand_over(caller, value.encode(), ptr_ptr, size_ptr)
        return NOT_FOUND

    def _h_proxy_get_property(self, caller, path_ptr, path_size, ptr_ptr, size_ptr):
        path = ".".join(s.decode() for s in self._read(caller, path_ptr, path_size).split(b"\0") if s)
        value = self.properties.get(path)
        if value is None:
            value = self.roots.get(self.contexts.get(self._acting()), {}).get(path)
        if value is None:
            return NOT_FOUND
        return self._hand_over(caller, value, ptr_ptr, size_ptr)

    def _h_proxy_get_buffer_bytes(self, caller, kind, start, length, ptr_ptr, size_ptr):
        data = self.buffers.get(kind)
        if data is None:
            return NOT_FOUND
        start, length = start & 0xFFFFFFFF, length & 0xFFFFFFFF
        return self._hand_over(caller, data[start:start + length], ptr_ptr, size_ptr)

    def _h_proxy_get_shared_data(self, caller, key_ptr, key_size, ptr_ptr, size_ptr, cas_ptr):
        key = self._read(caller, key_ptr, key_size)
        if key not in self.shared:
            return NOT_FOUND
        value, cas = self.shared[key]
        self._hand_over(caller, value, ptr_ptr, size_ptr)
        self._put_u32(caller, cas_ptr, cas)
        return OK

    def _h_proxy_set_shared_data(self, caller, key_ptr, key_size, value_ptr, value_size, cas):
        key = self._read(caller, key_ptr, key_size)
        value = self._read(caller, value_ptr, value_size)
        if cas and key in self.shared and self.shared[key][1] != cas:
            return CAS_MISMATCH
        self.cas += 1
        self.shared[key] = (value, self.cas)
        return OK

    def _h_proxy_define_metric(self, caller, kind, name_ptr, name_size, id_ptr):
        name = self._read(caller, name_ptr, name_size).decode()
        metric_id = len(self.metrics) + 1
        self.metrics[metric_id] = [kind, name, [] if kind == 2 else 0]
        self._put_u32(caller, id_ptr, metric_id)
        return OK

    def _h_proxy_increment_metric(self, caller, metric_id, offset):
        metric = self.metrics.get(metric_id)
        if metric is None or metric[0] == 2:
            return NOT_FOUND
        metric[2] += offset
        return OK

    def _h_proxy_record_metric(self, caller, metric_id, value):
        metric = self.metrics.get(metric_id)
        if metric is None:
            return NOT_FOUND
        value &= (1 << 64) - 1
        if metric[0] == 2:
            metric[2].append(value)
        else:
            metric[2] = value
        return OK

    def _h_proxy_http_call(self, caller, up_ptr, up_size, h_ptr, h_size, b_ptr, b_size, t_ptr, t_size,
                           timeout, token_ptr):
        cluster = self._read(caller, up_ptr, up_size).decode()
        headers = parse_pairs(self._read(caller, h_ptr, h_size))
        self._read(caller, b_ptr, b_size)
        self._read(caller, t_ptr, t_size)
        token = len(self.calls_out) + 1000
        self.calls_out.append((token, cluster, headers, self.contexts[self._acting()]))
        self._put_u32(caller, token_ptr, token)
        return OK

    # WASI, as proxy-wasm-cpp-host serves it: no environment, stdout/stderr to the log

    def _h_environ_sizes_get(self, caller, count_ptr, size_ptr):
        self._put_u32(caller, count_ptr, 0)
        self._put_u32(caller, size_ptr, 0)
        return 0

    def _h_environ_get(self, caller, environ, buf):
        return 0

    def _h_args_sizes_get(self, caller, count_ptr, size_ptr):
        return self._h_environ_sizes_get(caller, count_ptr, size_ptr)

    def _h_args_get(self, caller, argv, buf):
        return 0

    def _h_fd_write(self, caller, fd, iovs, iovs_len, nwritten_ptr):
        total = 0
        for i in range(iovs_len):
            ptr, size = struct.unpack("<II", bytes(self.memory.read(caller, iovs + 8 * i, iovs + 8 * i + 8)))
            self.logs.append((fd, self._read(caller, ptr, size).decode(errors="replace")))
            total += size
        self._put_u32(caller, nwritten_ptr, total)
        return 0

    def _h_clock_time_get(self, caller, clock_id, precision, ptr):
        now = self.monotonic_ns if clock_id == 1 else self.clock_ns
        self.memory.write(caller, struct.pack("<Q", now), ptr)
        return 0

    def _h_random_get(self, caller, ptr, size):
        # Fixed bytes: the same module and inputs must execute the same instructions.
        self.memory.write(caller, bytes(i % 256 for i in range(size)), ptr)
        return 0

    def _h_proc_exit(self, caller, code):
        raise RuntimeError(f"the module called proc_exit({code})")
