// LocustJvmWorker: a small third-party Locust 2.47 worker for the JVM (think locust4j), used by the test suite
// as a *foreign* peer. It runs at Locust's own fixed pace (no time compression) and speaks the wire protocol
// with JeroMQ 0.3.6 and msgpack-core 0.9.3 only (Debian's libjeromq-java and libmsgpack-java).
//
//   java -cp BUILD:jeromq.jar:msgpack-core.jar LocustJvmWorker --master-host H --master-port P [switches]
//
// Clean design: ONE thread ("zmq-io") owns the DEALER. It polls it with a 20 ms timeout and sends whatever the
// other threads queued; heartbeat, stats, command and user threads never touch the socket.
//
// Switches, each re-creating a bug JVM workers really have (off by default):
//   --shutdown-race        locust4j's design: a "zmq-receiver" thread blocks in recv() (no timeout), the other
//                          threads send under a lock, and shutdown terminates the context under the blocked
//                          receiver, which dies of an uncaught ZMQException (errno 156384765, ETERM).
//   --lock-across-recv MS  one lock guards the socket and the receiver holds it across a recv() with a MS ms
//                          receive timeout: heartbeats wait behind it, so the master marks the worker missing.
//   --no-ready-retry       client_ready is sent once and never again if no ack comes.
//   --stuck-spawn          the "spawn-handler" thread blocks forever in applySpawn after sending "spawning".

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicInteger;

import org.msgpack.core.*;
import org.msgpack.value.Value;
import org.zeromq.ZMQ;

public final class LocustJvmWorker {
    // Locust 2.47's constants (locust/runners.py), fixed: this worker ignores the master's pace.
    static final long HEARTBEAT_MS = 1000, STATS_MS = 3000, CONNECT_TIMEOUT_MS = 5000;
    private long masterTimeoutMs = 60_000; // --master-timeout S: a worker whose silent-master timeout is configurable
    static final int CONNECT_RETRY_COUNT = 60;
    static final long IO_POLL_MS = 20, LINGER_MS = 500;
    // JeroMQ closes a socket asynchronously (in its reaper thread), so a new DEALER that connects at once can reach
    // the master's ROUTER while the old connection with the same identity is still attached, and a ROUTER without
    // ROUTER_HANDOVER (Locust's) then ignores the new one for good. So a reconnect waits this long in between.
    static final long RECONNECT_PAUSE_MS = 250;

    private String host = "127.0.0.1";
    private int port = 5557, lockAcrossRecvMs; // lockAcrossRecvMs: 0 = off
    private boolean shutdownRace, noReadyRetry, stuckSpawn;
    // Differences from Locust's own worker that the real master does not mind (graded by consequence, not FAILED):
    private boolean spawningState, ignoreStopWhenReady, noQuitReply, idleWithoutStats, noUserCount;
    // ... and more of them (each a note of a catalog case), and bugs of its end of life:
    private boolean noMemory, ignoreStopTimeout, noStaleSpawning, readyAfterDuplicateAck, acceptEqualTimestamp;
    private boolean acceptStale, noExitAfterQuit, ignoreSigterm, reRegister;
    private String nodeId = hostname() + "_" + UUID.randomUUID().toString().replace("-", "");

    private final Stats stats = new Stats();
    private final Users users = new Users(stats);
    private volatile String state = "ready"; // what heartbeats report: ready | spawning | running
    private double lastSpawnTimestamp = Double.NEGATIVE_INFINITY; // spawn-handler only
    private volatile double stopTimeout = 0.0;

    // Transport. Clean mode: only zmq-io touches `socket`. Shared-socket modes: every use holds socketLock,
    // except the --shutdown-race receiver's recv() (that is the bug).
    private volatile ZMQ.Context context;
    private volatile ZMQ.Socket socket;
    private final Object socketLock = new Object();
    private final ConcurrentLinkedQueue<byte[]> outbox = new ConcurrentLinkedQueue<>();
    private volatile boolean ioStop, reconnectRequested, socketClosed;
    private Thread ioThread;

    // Lifecycle.
    private final CountDownLatch acked = new CountDownLatch(1), exitRequested = new CountDownLatch(1);
    private volatile boolean exiting, heardMaster;
    private volatile long lastMasterHeartbeat; // System.nanoTime() of the last master heartbeat
    private String exitReason; // these four: guarded by `this`
    private boolean exitFinalStats, shutDown;
    private int exitCode;

    private final BlockingQueue<Value[]> commands = new LinkedBlockingQueue<>(); // {type, data}
    private final ExecutorService spawnHandler = Executors.newSingleThreadExecutor(r -> daemon(r, "spawn-handler"));
    private final Set<String> loggedTypes = ConcurrentHashMap.newKeySet();
    private final AtomicLong malformedFrames = new AtomicLong();
    private static final CountDownLatch NEVER = new CountDownLatch(1); // --stuck-spawn waits on it: nobody counts down

    LocustJvmWorker(String[] args) {
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--master-host" -> host = args[++i];
                case "--master-port" -> port = Integer.parseInt(args[++i]);
                case "--shutdown-race" -> shutdownRace = true;
                case "--lock-across-recv" -> lockAcrossRecvMs = Integer.parseInt(args[++i]);
                case "--no-ready-retry" -> noReadyRetry = true;
                case "--stuck-spawn" -> stuckSpawn = true;
                case "--spawning-state" -> spawningState = true; // heartbeats say spawning, never running
                case "--ignore-stop-when-ready" -> ignoreStopWhenReady = true; // no answer to a stop without users
                case "--no-quit-reply" -> noQuitReply = true; // exits on the master's quit without saying quit
                case "--idle-without-stats" -> idleWithoutStats = true; // no stats report while it has no users
                case "--no-user-count" -> noUserCount = true; // counts only in user_classes_count (all the master reads)
                case "--node-id" -> nodeId = args[++i]; // any identity, e.g. one without the <host>_<hex> form
                case "--no-memory" -> noMemory = true; // current_memory_usage always 0
                case "--ignore-stop-timeout" -> ignoreStopTimeout = true; // client_ready right after client_stopped
                case "--no-stale-spawning" -> noStaleSpawning = true; // no 'spawning' for a spawn it discards
                case "--no-requests" -> User.recordRequests = false; // its users make no requests
                case "--ready-after-duplicate-ack" -> readyAfterDuplicateAck = true; // client_ready again on a second ack
                case "--accept-equal-timestamp" -> acceptEqualTimestamp = true; // applies a spawn as old as the last
                case "--accept-stale" -> acceptStale = true; // applies every spawn, however old
                case "--no-exit-after-quit" -> noExitAfterQuit = true; // gives up on a silent master, says quit, runs on
                case "--ignore-sigterm" -> ignoreSigterm = true; // SIGTERM does nothing
                case "--re-register" -> reRegister = true; // client_ready again after 3 s without a master heartbeat
                case "--master-timeout" -> masterTimeoutMs = (long) (Double.parseDouble(args[++i]) * 1000);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (lockAcrossRecvMs < 0 || shutdownRace && lockAcrossRecvMs > 0) {
            throw new IllegalArgumentException("--lock-across-recv takes MS > 0 and excludes --shutdown-race");
        }
    }

    public static void main(String[] args) throws InterruptedException {
        LocustJvmWorker worker;
        try {
            worker = new LocustJvmWorker(args);
        } catch (RuntimeException e) { // an unknown switch, a bad number or a missing value
            System.err.println("usage: LocustJvmWorker --master-host H --master-port P [--shutdown-race] "
                    + "[--lock-across-recv MS] [--no-ready-retry] [--stuck-spawn] [--spawning-state] [--ignore-stop-when-ready] "
                    + "[--no-quit-reply] [--idle-without-stats] [--no-user-count] [--node-id ID] [--no-memory] "
                    + "[--ignore-stop-timeout] [--no-stale-spawning] [--no-requests] [--ready-after-duplicate-ack] "
                    + "[--accept-equal-timestamp] [--accept-stale] [--no-exit-after-quit] [--ignore-sigterm] [--re-register] "
                    + "[--master-timeout S]: " + e);
            System.exit(2);
            return;
        }
        if (worker.ignoreSigterm) { // BUG on purpose: an OS asking it to stop is ignored
            sun.misc.Signal.handle(new sun.misc.Signal("TERM"), signal -> log("INFO", "--ignore-sigterm: SIGTERM ignored"));
        }
        // Every way out (quit from the master, master timeout, SIGTERM) goes through this hook.
        Runtime.getRuntime().addShutdownHook(new Thread(worker::shutdown, "shutdown-hook"));
        System.exit(worker.run());
    }

    // ---------------------------------------------------------------- lifecycle

    int run() throws InterruptedException {
        String mode = shutdownRace ? "shutdown-race" : lockAcrossRecvMs > 0 ? "lock-across-recv " + lockAcrossRecvMs + " ms" : "clean";
        log("INFO", "starting node_id=" + nodeId + " master=tcp://" + host + ":" + port + " mode=" + mode
                + (noReadyRetry ? " no-ready-retry" : "") + (stuckSpawn ? " stuck-spawn" : ""));
        synchronized (socketLock) {
            context = ZMQ.context(1);
            socket = openSocket();
        }
        ioThread = shutdownRace ? new Thread(this::raceReceiveLoop, "zmq-receiver")
                : lockAcrossRecvMs > 0 ? new Thread(this::lockedReceiveLoop, "zmq-receiver") : new Thread(this::ioLoop, "zmq-io");
        daemon(this::commandLoop, "command-handler").start();

        // client_ready with -1 (as boomer and locust4j send it), re-sent every 5 s until the ack.
        for (int attempt = 1; !exiting; attempt++) {
            send("client_ready", -1);
            // The socket thread starts once the first client_ready is handed over, so that a receiver holding
            // the lock (--lock-across-recv) cannot hold it back. Not a daemon: shutdown joins it first.
            if (attempt == 1) ioThread.start();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CONNECT_TIMEOUT_MS);
            while (!exiting && acked.getCount() > 0 && (noReadyRetry || System.nanoTime() < deadline)) {
                acked.await(50, TimeUnit.MILLISECONDS);
            }
            if (acked.getCount() == 0 || exiting) break;
            if (attempt > CONNECT_RETRY_COUNT) { // Locust gives up after 61 attempts, with exit code 255
                requestExit("Failed to connect to the Locust master: no ack after " + attempt + " attempts", false, 255);
                break;
            }
            log("INFO", "Failed to connect to master " + host + ":" + port + ", retry " + attempt + "/" + CONNECT_RETRY_COUNT + ".");
        }
        if (acked.getCount() == 0) { // heartbeats and stats start only after the ack
            daemon(this::heartbeatLoop, "heartbeat").start();
            daemon(this::statsLoop, "stats").start();
        }
        exitRequested.await();
        return exitCode;
    }

    /** Ask the main thread to exit (it calls System.exit, which runs the shutdown hook). First caller wins. */
    void requestExit(String reason, boolean finalStats, int code) {
        synchronized (this) {
            if (exitReason != null) return;
            exitReason = reason;
            exitFinalStats = finalStats;
            exitCode = code;
        }
        exiting = true;
        exitRequested.countDown();
    }

    /** The shutdown hook: stop users, (final stats), quit, then close the transport. Runs once. */
    void shutdown() {
        boolean finalStats;
        synchronized (this) {
            if (shutDown) return;
            shutDown = true;
            if (exitReason == null) exitReason = "SIGTERM (JVM shutdown)";
            finalStats = exitFinalStats;
        }
        exiting = true;
        log("INFO", "shutting down: " + exitReason);
        users.stopAll(0);
        if (context == null) return;
        if (finalStats) send("stats", statsReport());
        if (!(noQuitReply && "quit from master".equals(exitReason))) {
            send("quit", null); // the master is served before the transport goes, in every mode
        }
        closeTransport();
        log("INFO", "bye");
    }

    // ---------------------------------------------------------------- transport

    private ZMQ.Socket openSocket() {
        ZMQ.Socket s = context.socket(ZMQ.DEALER);
        s.setIdentity(nodeId.getBytes(StandardCharsets.UTF_8)); // before connect: the master routes by it
        s.setTCPKeepAlive(1);
        if (lockAcrossRecvMs > 0) s.setReceiveTimeOut(lockAcrossRecvMs);
        s.connect("tcp://" + host + ":" + port);
        return s;
    }

    private boolean sharedSocket() {
        return shutdownRace || lockAcrossRecvMs > 0;
    }

    /** Any thread. Clean mode: queue it for zmq-io. Shared-socket modes: send right here, under the lock. */
    void send(String type, Object data) {
        byte[] frame = encode(type, data, nodeId);
        if (!sharedSocket()) {
            outbox.add(frame);
            return;
        }
        synchronized (socketLock) { // --lock-across-recv: waits here while the receiver sits in recv()
            if (!socketClosed && !socket.send(frame, ZMQ.DONTWAIT)) log("WARN", "dropped " + type + ": the socket refused it");
        }
    }

    /** Clean mode: the one thread that owns the DEALER. Never interrupted (NIO channels close on interrupt). */
    private void ioLoop() {
        ZMQ.Poller poller = new ZMQ.Poller(1);
        poller.register(socket, ZMQ.Poller.POLLIN);
        while (true) {
            boolean stop = ioStop; // read before draining: what was queued before the flag goes out
            for (byte[] f; (f = outbox.poll()) != null; ) {
                if (!socket.send(f, ZMQ.DONTWAIT)) log("WARN", "dropped a message: the socket refused it");
            }
            if (stop) return;
            if (reconnectRequested) {
                reconnectRequested = false;
                poller.unregister(socket);
                socket.setLinger(0);
                socket.close();
                pause(RECONNECT_PAUSE_MS); // queued messages wait meanwhile
                socket = openSocket(); // same identity, no new client_ready
                poller.register(socket, ZMQ.Poller.POLLIN);
                log("INFO", "reconnected to tcp://" + host + ":" + port);
            }
            if (poller.poll(IO_POLL_MS) > 0 && poller.pollin(0)) {
                for (byte[] f; (f = socket.recv(ZMQ.DONTWAIT)) != null; ) onFrame(f);
            }
        }
    }

    /** --shutdown-race: a receiver thread beside threads that send on the same socket (under socketLock). */
    private void raceReceiveLoop() {
        // BUG on purpose (locust4j's shape): a blocking recv() with no timeout and no try/catch. When the context
        // is terminated under it, ZMQException(ETERM) escapes this thread uncaught.
        while (true) onFrame(socket.recv());
    }

    /** --lock-across-recv: the same, but the receiver holds socketLock across its recv(). */
    private void lockedReceiveLoop() {
        while (!exiting) {
            byte[] f;
            synchronized (socketLock) { // BUG on purpose: held for up to MS ms while nothing arrives
                if (socketClosed) return;
                f = socket.recv();
            }
            if (f != null) onFrame(f);
        }
    }

    private void reconnect() {
        if (!sharedSocket()) {
            reconnectRequested = true; // we are on zmq-io: done at the top of its next turn
            return;
        }
        synchronized (socketLock) {
            if (socketClosed) return;
            socket.setLinger(0);
            socket.close();
            pause(RECONNECT_PAUSE_MS);
            socket = openSocket();
        }
        log("INFO", "reconnected to tcp://" + host + ":" + port);
    }

    private void closeTransport() {
        if (shutdownRace) {
            synchronized (socketLock) {
                socketClosed = true; // no more sends from other threads
                socket.setLinger(LINGER_MS);
            }
            // BUG on purpose: terminate the context while zmq-receiver is blocked in recv(). JeroMQ wakes it with
            // ETERM (uncaught: the JVM prints it); term() itself returns once the socket is closed below.
            Thread term = daemon(context::term, "zmq-term");
            term.start();
            join(ioThread, 1000);
            synchronized (socketLock) {
                socket.close();
            }
            join(term, 2000);
            return;
        }
        if (lockAcrossRecvMs > 0) {
            join(ioThread, lockAcrossRecvMs + 500L); // the receiver sees `exiting` once its recv() times out
        } else {
            ioStop = true; // zmq-io sends what is queued (our quit), then returns
            join(ioThread, 2000);
        }
        if (ioThread.isAlive()) {
            log("WARN", ioThread.getName() + " did not stop; leaving the socket open");
            return;
        }
        synchronized (socketLock) { // the socket's thread has ended: close, then terminate
            socketClosed = true;
            socket.setLinger(LINGER_MS); // a dead master must not keep term() waiting for ever
            socket.close();
        }
        context.term();
    }

    // ---------------------------------------------------------------- messages from the master

    /** On the thread that received the frame (zmq-io or zmq-receiver): only quick work here. */
    private void onFrame(byte[] frame) {
        String type;
        Value data;
        try {
            MessageUnpacker u = MessagePack.newDefaultUnpacker(frame);
            Value v = u.unpackValue();
            if (u.hasNext()) throw new IllegalArgumentException("trailing bytes after the message");
            if (!v.isArrayValue() || v.asArrayValue().size() != 3 || !v.asArrayValue().get(0).isStringValue()) {
                throw new IllegalArgumentException("not a [type, data, node_id] array: " + abbreviate(v.toString()));
            }
            type = v.asArrayValue().get(0).asStringValue().asString();
            data = v.asArrayValue().get(1);
        } catch (IOException | RuntimeException e) { // undecodable: skip, keep working; log the 1st and every 1000th
            long n = malformedFrames.incrementAndGet(); // (a line per frame of a flood starves the heartbeat thread)
            if (n == 1 || n % 1000 == 0) {
                log("WARN", "malformed frame of " + frame.length + " bytes skipped: " + why(e) + " (" + n + " so far)");
            }
            return;
        }
        switch (type) {
            case "heartbeat" -> {
                lastMasterHeartbeat = System.nanoTime();
                heardMaster = true;
            }
            case "ack" -> {
                if (acked.getCount() > 0) { // later acks (after a stop's client_ready) are ignored
                    Value index = get(data, "index");
                    log("INFO", "ack from master" + (index != null && index.isIntegerValue() ? ", index " + index : " (no index)"));
                    acked.countDown();
                } else if (readyAfterDuplicateAck && "running".equals(state)) {
                    send("client_ready", -1); // takes a duplicate ack for a request to register again
                }
            }
            case "quit" -> {
                log("INFO", "Got quit message from master, shutting down...");
                requestExit("quit from master", true, 0);
            }
            case "reconnect" -> {
                log("WARN", "Received reconnect message from master. Resetting RPC connection.");
                reconnect();
            }
            case "spawn", "stop" -> {
                if (type.equals("spawn") && !data.isMapValue()) {
                    log("WARN", "malformed spawn skipped: data is not a map: " + abbreviate(data.toString()));
                } else if (type.equals("stop") && ignoreStopWhenReady && "ready".equals(state)) {
                    log("INFO", "--ignore-stop-when-ready: stop ignored, nothing runs");
                } else {
                    commands.add(new Value[] {v(type), data});
                }
            }
            default -> { // spawning_complete, update_user_class, custom types
                if (loggedTypes.add(type)) log("INFO", "ignoring message type " + type + " (logged once per type)");
            }
        }
    }

    /** Runs spawn and stop in order. A spawn is applied on the spawn-handler thread, and waited for. */
    private void commandLoop() {
        while (true) {
            try {
                Value[] cmd = commands.take();
                if (cmd[0].toString().equals("spawn")) {
                    spawnHandler.submit(() -> applySpawn(cmd[1])).get(); // --stuck-spawn: waits here for ever too
                } else {
                    applyStop();
                }
            } catch (InterruptedException e) {
                return;
            } catch (ExecutionException e) {
                log("ERROR", "spawn failed: " + e.getCause());
            }
        }
    }

    /** On the spawn-handler thread. Like Locust, "spawning" goes out before the timestamp check. */
    private Void applySpawn(Value data) throws InterruptedException {
        double timestamp = number(get(data, "timestamp"), 0.0);
        boolean stale = acceptStale ? false : acceptEqualTimestamp ? timestamp < lastSpawnTimestamp : timestamp <= lastSpawnTimestamp;
        if (!(stale && noStaleSpawning)) send("spawning", null);
        if (stale) {
            log("INFO", "Discard spawn message with older or equal timestamp than timestamp of previous spawn message");
            return null;
        }
        lastSpawnTimestamp = timestamp;
        stopTimeout = number(get(data, "stop_timeout"), 0.0);
        state = "spawning";
        Map<String, Integer> target = new LinkedHashMap<>();
        Value counts = get(data, "user_classes_count");
        if (counts != null && counts.isMapValue()) {
            counts.asMapValue().map().forEach((cls, n) -> {
                if (cls.isStringValue() && n.isIntegerValue()) target.put(cls.toString(), Math.max(0, n.asIntegerValue().toInt()));
            });
        }
        log("INFO", "spawn " + target + " (stop_timeout " + stopTimeout + " s)");
        if (stuckSpawn) {
            log("INFO", "--stuck-spawn: blocking in applySpawn for ever");
            NEVER.await(); // BUG on purpose: nobody counts this latch down
        }
        users.setCounts(target);
        Map<String, Object> done;
        synchronized (users) { // one consistent view (the socket lock is never taken while holding it)
            done = noUserCount ? map("user_classes_count", users.counts())
                    : map("user_classes_count", users.counts(), "user_count", users.total());
        }
        send("spawning_complete", done);
        state = spawningState ? "spawning" : "running";
        return null;
    }

    /** Locust 2.47 (§3.5): stop users, client_stopped, sleep stop_timeout (still "running"), client_ready, ready. */
    private void applyStop() throws InterruptedException {
        log("INFO", "stop: stopping " + users.total() + " users");
        users.stopAll(stopTimeout);
        send("client_stopped", null);
        if (!ignoreStopTimeout) Thread.sleep((long) (stopTimeout * 1000));
        send("client_ready", -1); // the master acks it; nobody waits for that ack
        state = "ready";
        log("INFO", "stopped, ready again");
    }

    // ---------------------------------------------------------------- periodic reports

    private void heartbeatLoop() {
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        Runtime rt = Runtime.getRuntime();
        long reRegistered = 0;
        for (long next = System.nanoTime(); !exiting; next = sleepPeriod(next, HEARTBEAT_MS)) {
            long unanswered = System.nanoTime() - lastMasterHeartbeat;
            if (reRegister && heardMaster && unanswered > TimeUnit.MILLISECONDS.toNanos(3 * HEARTBEAT_MS)
                    && System.nanoTime() - reRegistered > TimeUnit.MILLISECONDS.toNanos(5 * HEARTBEAT_MS)) {
                log("INFO", "--re-register: no master heartbeat for 3 s, client_ready again");
                send("client_ready", -1); // a restarted master knows no worker: register again
                reRegistered = System.nanoTime();
            }
            // Locust 2.19+: give up on a master that has gone silent, once it has been heard at all.
            if (heardMaster && System.nanoTime() - lastMasterHeartbeat > TimeUnit.MILLISECONDS.toNanos(masterTimeoutMs)) {
                log("ERROR", "Didn't get heartbeat from master in over " + masterTimeoutMs / 1000.0 + "s");
                if (noExitAfterQuit) { // BUG on purpose: it says quit and stops heartbeating, but never exits
                    send("quit", null);
                    log("INFO", "--no-exit-after-quit: quit sent, running on");
                    return;
                }
                requestExit("master heartbeat timeout", false, 0);
                return;
            }
            send("heartbeat", map("state", state, "current_cpu_usage", Math.max(0.0, os.getProcessCpuLoad() * 100.0),
                    "current_memory_usage", noMemory ? 0L : rt.totalMemory() - rt.freeMemory())); // bytes of JVM heap in use
        }
    }

    private void statsLoop() { // the first report right after the ack, then every 3 s, in every state
        for (long next = System.nanoTime(); !exiting; next = sleepPeriod(next, STATS_MS)) {
            if (!(idleWithoutStats && users.total() == 0)) send("stats", statsReport());
        }
    }

    private Map<String, Object> statsReport() {
        Map<String, Object> report = stats.report();
        synchronized (users) {
            report.put("user_classes_count", users.counts());
            if (!noUserCount) report.put("user_count", users.total());
        }
        return report;
    }

    /** Sleep until one period after `last` (nanoTime); after a stall, a full period from now (no catch-up burst). */
    private static long sleepPeriod(long last, long periodMs) {
        long now = System.nanoTime(), period = TimeUnit.MILLISECONDS.toNanos(periodMs);
        long next = last + period > now ? last + period : now + period;
        pause(TimeUnit.NANOSECONDS.toMillis(next - now));
        return next;
    }

    // ---------------------------------------------------------------- users and stats

    /** Users are threads; each "makes a request" of ~50 ms every ~100 ms and records it. */
    static final class Users {
        private final Stats stats;
        private final Map<String, List<User>> byClass = new LinkedHashMap<>();
        private final AtomicInteger numbers = new AtomicInteger();

        Users(Stats stats) {
            this.stats = stats;
        }

        /** Absolute per-class counts; classes not named keep theirs (Locust's worker does the same). */
        synchronized void setCounts(Map<String, Integer> target) {
            target.forEach((cls, n) -> {
                List<User> running = byClass.computeIfAbsent(cls, k -> new ArrayList<>());
                while (running.size() < n) {
                    User u = new User(stats, "user-" + numbers.incrementAndGet());
                    u.start();
                    running.add(u);
                }
                while (running.size() > n) running.remove(running.size() - 1).interrupt();
            });
        }

        synchronized Map<String, Integer> counts() { // every class ever asked for, 0 included (as Locust's)
            Map<String, Integer> out = new LinkedHashMap<>();
            byClass.forEach((cls, list) -> out.put(cls, list.size()));
            return out;
        }

        synchronized int total() {
            return byClass.values().stream().mapToInt(List::size).sum();
        }

        /** Stop everyone: for up to `graceSeconds` users may finish their request, then they are cut short. */
        void stopAll(double graceSeconds) {
            List<User> all = new ArrayList<>();
            synchronized (this) {
                byClass.values().forEach(all::addAll);
                byClass.values().forEach(List::clear);
            }
            all.forEach(u -> u.stopping = true);
            long deadline = System.nanoTime() + (long) (graceSeconds * 1e9);
            for (User u : all) join(u, (deadline - System.nanoTime()) / 1_000_000);
            all.forEach(Thread::interrupt);
            for (User u : all) join(u, 200);
        }
    }

    static final class User extends Thread {
        static volatile boolean recordRequests = true; // --no-requests: none recorded

        private final Stats stats;
        volatile boolean stopping;

        User(Stats stats, String name) {
            super(name);
            this.stats = stats;
            setDaemon(true);
        }

        @Override
        public void run() {
            try {
                while (!stopping) {
                    long t0 = System.nanoTime();
                    Thread.sleep(50); // the "request"; cut short by an interrupt, it is not recorded (as in Locust)
                    if (recordRequests) stats.record((System.nanoTime() - t0) / 1e6, 128);
                    Thread.sleep(50); // wait time
                }
            } catch (InterruptedException e) {
                // stopped
            }
        }
    }

    /** One request entry and the "Aggregated" total, with DELTA semantics: a report resets what it reported. */
    static final class Stats {
        private final Entry entry = new Entry("/jvm", "GET"), total = new Entry("Aggregated", "");

        synchronized void record(double ms, long contentLength) { // both or neither: they always agree
            double now = System.currentTimeMillis() / 1000.0;
            entry.log(now, ms, contentLength);
            total.log(now, ms, contentLength);
        }

        synchronized Map<String, Object> report() { // only entries with requests since the last report
            return map("stats", entry.numRequests > 0 ? List.of(entry.strippedReport()) : List.of(),
                    "stats_total", total.strippedReport(), "errors", Map.of());
        }
    }

    static final class Entry {
        final String name, method;
        double startTime, totalResponseTime, maxResponseTime;
        Double lastRequestTimestamp, minResponseTime;
        long numRequests, totalContentLength;
        TreeMap<Long, Long> responseTimes, reqsPerSec; // Long keys: packed as msgpack ints, as Locust needs

        Entry(String name, String method) {
            this.name = name;
            this.method = method;
            reset();
        }

        void reset() {
            startTime = System.currentTimeMillis() / 1000.0;
            totalResponseTime = maxResponseTime = 0;
            lastRequestTimestamp = minResponseTime = null;
            numRequests = totalContentLength = 0;
            responseTimes = new TreeMap<>();
            reqsPerSec = new TreeMap<>();
        }

        void log(double now, double ms, long contentLength) {
            numRequests++;
            reqsPerSec.merge((long) Math.floor(now), 1L, Long::sum);
            lastRequestTimestamp = now;
            totalResponseTime += ms;
            minResponseTime = minResponseTime == null ? ms : Math.min(minResponseTime, ms);
            maxResponseTime = Math.max(maxResponseTime, ms);
            responseTimes.merge(bucket(ms), 1L, Long::sum);
            totalContentLength += contentLength;
        }

        Map<String, Object> strippedReport() {
            Map<String, Object> m = map("name", name, "method", method, "last_request_timestamp", lastRequestTimestamp,
                    "start_time", startTime, "num_requests", numRequests, "num_none_requests", 0L, "num_failures", 0L,
                    "total_response_time", totalResponseTime, "max_response_time", maxResponseTime,
                    "min_response_time", minResponseTime, "total_content_length", totalContentLength,
                    "response_times", responseTimes, "num_reqs_per_sec", reqsPerSec, "num_fail_per_sec", Map.of());
            reset();
            return m;
        }
    }

    /** locust.stats.bucket_response_time; Math.rint rounds half to even, as Python's round() does. */
    static long bucket(double ms) {
        if (ms < 100) return (long) Math.rint(ms);
        if (ms < 1000) return (long) Math.rint(ms / 10) * 10;
        if (ms < 10000) return (long) Math.rint(ms / 100) * 100;
        return (long) Math.rint(ms / 1000) * 1000;
    }

    // ---------------------------------------------------------------- msgpack, by hand

    static byte[] encode(String type, Object data, String nodeId) {
        try (MessageBufferPacker p = MessagePack.newDefaultBufferPacker()) {
            p.packArrayHeader(3); // [type, data, node_id]: one frame, no empty delimiter
            p.packString(type);
            pack(p, data);
            p.packString(nodeId);
            return p.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void pack(MessagePacker p, Object o) throws IOException {
        if (o == null) p.packNil();
        else if (o instanceof String s) p.packString(s);
        else if (o instanceof Integer || o instanceof Long) p.packLong(((Number) o).longValue()); // smallest int form
        else if (o instanceof Double d) p.packDouble(d); // always float64
        else if (o instanceof Map<?, ?> m) {
            p.packMapHeader(m.size());
            for (Map.Entry<?, ?> e : m.entrySet()) {
                pack(p, e.getKey());
                pack(p, e.getValue());
            }
        } else if (o instanceof List<?> l) {
            p.packArrayHeader(l.size());
            for (Object x : l) pack(p, x);
        } else throw new IllegalArgumentException("cannot pack " + o.getClass().getName());
    }

    /** An ordered map from alternating keys and values (nil values allowed, unlike Map.of). */
    static Map<String, Object> map(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    static Value v(String s) {
        return org.msgpack.value.ValueFactory.newString(s);
    }

    /** map[key] of a msgpack map with str keys; null if absent or not a map. */
    static Value get(Value map, String key) {
        return map != null && map.isMapValue() ? map.asMapValue().map().get(v(key)) : null;
    }

    static double number(Value v, double fallback) {
        return v != null && v.isNumberValue() ? v.asNumberValue().toDouble() : fallback;
    }

    /** Why a frame did not decode, in words (no exception class names in the log: the harness greps for them). */
    static String why(Throwable e) {
        if (e instanceof MessageInsufficientBufferException) return "truncated msgpack";
        if (e instanceof MessageStringCodingException) return "a str that is not UTF-8";
        return e.getMessage() != null ? e.getMessage() : "undecodable msgpack";
    }

    // ---------------------------------------------------------------- small helpers

    static Thread daemon(Runnable body, String name) {
        Thread t = new Thread(body, name);
        t.setDaemon(true);
        return t;
    }

    static void join(Thread t, long millis) {
        try {
            t.join(Math.max(1, millis));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 77) + "...";
    }

    static String hostname() { // /proc first: InetAddress may wait for DNS
        try {
            String h = Files.readString(Path.of("/proc/sys/kernel/hostname")).trim();
            return h.isEmpty() ? java.net.InetAddress.getLocalHost().getHostName() : h;
        } catch (IOException | RuntimeException e) {
            return "jvm";
        }
    }

    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSS");

    static void log(String level, String message) { // System.err is autoflushed
        System.err.println("[" + LocalDateTime.now().format(TIME) + "] " + level + " " + message);
    }
}
