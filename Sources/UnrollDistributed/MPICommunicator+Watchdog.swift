// Every blocking wait of MPICommunicator goes through `waitAll`: it polls its requests (spinning
// briefly, then sleeping in growing steps so that a long wait, e.g. for rank 0 writing a
// checkpoint, does not burn a core) and, when none of them has completed for `collectiveTimeout`
// seconds, runs the timeout protocol: the stalled ranks exchange one status message each on a
// dedicated communicator, each prints one line naming the ranks that did not answer, and the job
// ends with MPI_Abort, as NCCL's watchdog does. The per-time-step `poll` does not come here.
#if canImport(Glibc)
import Glibc
#endif
import MPIShim

/// Seconds on CLOCK_MONOTONIC_COARSE: read from the vDSO without a syscall, with 1–4 ms
/// resolution, which is plenty for timeouts and back-off.
@inline(__always)
func coarseSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// A wait polls at full speed for this long without progress, so a peer that is only a little
/// behind costs no latency; after that it sleeps between polls.
private let spinSeconds = 0.02
/// Length of a status message of the timeout protocol: what the sender is waiting in, NUL-padded.
private let statusBytes = 96
private let statusTag: Int32 = 1
private let printedTag: Int32 = 2
/// Exit status of a job ended by the collective timeout.
let collectiveTimeoutExitCode: Int32 = 1

/// Whom the requests of a `waitAll` talk to.
enum WaitPeers {
    /// One MPI collective (peers unknown).
    case collective
    /// (receive, send) pairs with every other rank in ascending order.
    case allOthers
    /// Any number of requests, all with this one rank.
    case partner(Int)
}

extension MPICommunicator {
    /// Blocks until every request in `requests[0..<count]` has completed; they are then
    /// MPI_REQUEST_NULL, as after MPI_Waitall. When none completes for `collectiveTimeout` seconds,
    /// ends the job (see `collectiveTimedOut`). `what` names the operation in messages; `peers`
    /// says whom the requests talk to, so that a timeout can name the pending ones.
    func waitAll(_ requests: UnsafeMutablePointer<MPI_Request?>, count: Int32, _ what: StaticString,
                 peers: WaitPeers) throws {
        var lastProgress = 0.0, polls = 0, progressed = true, sleeping = false
        defer { if sleeping { unroll_set_current_wait(nil) } }
        while true {
            var completed: Int32 = 0
            try mpiCheck(MPI_Testsome(count, requests, &completed, waitIndices, MPI_STATUSES_IGNORE), "MPI_Testsome")
            if completed == MPI_UNDEFINED { return }  // no active request left
            if completed > 0 { progressed = true }
            // The clock only every 32 polls while spinning; every poll once sleeping.
            polls &+= 1
            if !sleeping && polls & 31 != 0 { continue }
            let now = coarseSeconds()
            if progressed {
                lastProgress = now
                progressed = false
                continue
            }
            let stalled = now - lastProgress
            if stalled >= collectiveTimeout {
                collectiveTimedOut(what, stalled: stalled,
                                   pendingPeers: pendingPeers(requests, count: count, peers))
            }
            if stalled >= spinSeconds {
                if !sleeping {
                    sleeping = true
                    unroll_set_current_wait(UnsafeRawPointer(what.utf8Start).assumingMemoryBound(to: CChar.self))
                }
                // 0.1 ms keeps the added latency small for moderate waits; past 1 s, 1 ms.
                var pause = timespec(tv_sec: 0, tv_nsec: stalled < 1 ? 100_000 : 1_000_000)
                nanosleep(&pause, nil)
            }
        }
    }

    /// Ranks whose messages in `requests` are not complete; nil when `peers` does not say.
    private func pendingPeers(_ requests: UnsafeMutablePointer<MPI_Request?>, count: Int32,
                              _ peers: WaitPeers) -> [Int]? {
        var pending: [Int] = []
        for i in 0..<Int(count) where requests[i] != MPI_REQUEST_NULL {
            let peer: Int
            switch peers {
            case .collective: return nil
            case .allOthers: peer = i / 2 < rank ? i / 2 : i / 2 + 1
            case .partner(let partner): peer = partner
            }
            if pending.last != peer { pending.append(peer) }
        }
        return pending
    }

    /// Ends the job after a wait made no progress for `collectiveTimeout` seconds. Every rank
    /// that gets here sends its status (what it waits in) to every other rank on `watchdog` and
    /// collects theirs for a grace period (ranks stuck in the same operation time out within a
    /// step of each other); ranks that do not answer are stopped, hung, or busy outside MPI. It
    /// prints one line, tells the ranks that answered it has printed and waits for theirs (so
    /// that its MPI_Abort does not cut their lines), then calls MPI_Abort.
    func collectiveTimedOut(_ what: StaticString, stalled: Double, pendingPeers: [Int]?) -> Never {
        let grace = min(30, max(2, collectiveTimeout / 10))
        let others = (0..<size).filter { $0 != rank }
        let mine = Array(what.description.utf8.prefix(statusBytes - 1))
        let (answered, inbox) = exchange(mine, bytes: statusBytes, tag: statusTag, with: others, for: grace)
        var silent: [Int] = [], replies: [(rank: Int, what: String)] = []
        for (j, peer) in others.enumerated() {
            if answered[j] {
                let bytes = UnsafeBufferPointer(start: inbox + j * statusBytes, count: statusBytes).prefix { $0 != 0 }
                replies.append((peer, String(decoding: bytes, as: UTF8.self)))
            } else {
                silent.append(peer)
            }
        }
        var line = "[rank \(rank)] collective timeout: no progress for \(Int(stalled.rounded())) s in '\(what)'"
        if !silent.isEmpty {
            line += "; waiting for rank(s) \(list(silent)) (no answer: stopped, hung, or busy outside MPI)"
        } else {
            line += "; every rank answered, so none is stopped: mismatched collectives or a deadlock"
        }
        if let pendingPeers, !pendingPeers.isEmpty, pendingPeers != silent {
            line += "; messages with rank(s) \(list(pendingPeers)) pending"
        }
        var byOperation: [String: [Int]] = [:]
        for reply in replies { byOperation[reply.what, default: []].append(reply.rank) }
        for (operation, ranks) in byOperation.sorted(by: { $0.value[0] < $1.value[0] }) {
            line += "; rank(s) \(list(ranks)) waiting in '\(operation)'"
        }
        line += "; ending the job (collective timeout \(formatSeconds(collectiveTimeout)) s)\n"
        fflush(nil)
        writeToStandardError(line)
        // Second round with the ranks that answered: each has printed its line before we abort.
        let peers = others.enumerated().filter { answered[$0.offset] }.map(\.element)
        if !peers.isEmpty { _ = exchange([1], bytes: 1, tag: printedTag, with: peers, for: grace + 1) }
        _ = MPI_Abort(MPI_COMM_WORLD, collectiveTimeoutExitCode)
        _exit(collectiveTimeoutExitCode)  // MPI_Abort does not return; this is for a broken MPI only
    }

    /// Sends `message` (NUL-padded to `bytes`) to every rank in `peers` on `watchdog` and receives
    /// as much from each, for at most `seconds`. Returns which peers' messages arrived and the inbox
    /// (message j at offset j · bytes). Buffers and requests are never freed: sends to a silent rank
    /// may stay pending until MPI_Abort, and MPI must not touch freed memory meanwhile. MPI errors
    /// are ignored: the job is about to be aborted either way.
    private func exchange(_ message: [UInt8], bytes: Int, tag: Int32, with peers: [Int],
                          for seconds: Double) -> (answered: [Bool], inbox: UnsafeMutablePointer<UInt8>) {
        let outbox = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes)
        outbox.initialize(repeating: 0, count: bytes)
        for (i, byte) in message.prefix(bytes).enumerated() { outbox[i] = byte }
        let inbox = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, peers.count * bytes))
        inbox.initialize(repeating: 0, count: max(1, peers.count * bytes))
        let requests = UnsafeMutablePointer<MPI_Request?>.allocate(capacity: max(1, 2 * peers.count))
        requests.initialize(repeating: MPI_REQUEST_NULL, count: max(1, 2 * peers.count))
        for (j, peer) in peers.enumerated() {
            _ = MPI_Irecv(inbox + j * bytes, Int32(bytes), MPI_BYTE, Int32(peer), tag, watchdog, requests + 2 * j)
            _ = MPI_Isend(outbox, Int32(bytes), MPI_BYTE, Int32(peer), tag, watchdog, requests + 2 * j + 1)
        }
        var answered = [Bool](repeating: false, count: peers.count)
        pollReceives(requests, answered: &answered, for: seconds)
        return (answered, inbox)
    }

    /// Polls the receives `requests[2j]` until all have completed or `seconds` have passed,
    /// setting `answered[j]` for those that did. The sends `requests[2j + 1]` are left pending.
    private func pollReceives(_ requests: UnsafeMutablePointer<MPI_Request?>, answered: inout [Bool],
                              for seconds: Double) {
        let deadline = coarseSeconds() + seconds
        while answered.contains(false) && coarseSeconds() < deadline {
            for j in answered.indices where !answered[j] {
                var flag: Int32 = 0
                answered[j] = MPI_Test(requests + 2 * j, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag != 0
            }
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&pause, nil)
        }
    }
}

/// "1", "1, 3".
private func list(_ ranks: [Int]) -> String { ranks.map(String.init).joined(separator: ", ") }

/// Seconds as given: "5", "0.5".
private func formatSeconds(_ s: Double) -> String {
    s == s.rounded() && abs(s) < 1e15 ? String(Int(s)) : String(s)
}
