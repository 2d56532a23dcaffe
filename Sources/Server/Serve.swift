import Engine
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Runs the engine thread as a service-lifecycle `Service`: on graceful shutdown the scheduler
/// stops taking work, finishes what it has (bounded by the group's drain timeout), then exits.
public struct EngineService: Service {
    let scheduler: Scheduler
    let drainTimeout: Double

    public init(scheduler: Scheduler, drainTimeout: Double) {
        self.scheduler = scheduler
        self.drainTimeout = drainTimeout
    }

    public func run() async throws {
        scheduler.start()
        // Wait for SIGTERM (graceful shutdown) or cancellation.
        try? await gracefulShutdown()
        scheduler.shutdown()
        let deadline = ContinuousClock.now + .seconds(drainTimeout)
        while scheduler.stats.alive, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        scheduler.terminate()
    }
}

/// Listed last in the service group, so it is the first to hear of graceful shutdown
/// (service-lifecycle stops services in reverse order): marks the server draining, so /readyz
/// answers 503, then waits `delay` seconds before the HTTP listener closes and in-flight work drains.
public struct DrainNotifier: Service {
    let server: OpenAIServer
    let delay: Double

    public init(server: OpenAIServer, delay: Double) {
        self.server = server
        self.delay = delay
    }

    public func run() async throws {
        try? await gracefulShutdown()
        server.beginDraining()
        server.logger.info("draining: /readyz now answers 503", metadata: ["unready_delay_s": "\(delay)"])
        // The drain deadline is the server's own: when it passes with work still running, that
        // work is cancelled and each response ends with a `shutting_down` error while the
        // connections are still open (before the service group's hard limit cuts them).
        let server = server, total = delay + server.config.drainTimeout
        Task {
            try await Task.sleep(for: .seconds(total))
            let s = server.scheduler.stats
            guard s.alive, s.running + s.waiting > 0 else { return }
            server.logger.warning("drain timeout reached: cancelling the requests still running",
                                  metadata: ["running": "\(s.running)", "waiting": "\(s.waiting)"])
            server.drainExpired.set()
            server.scheduler.terminate()
        }
        if delay > 0 { try? await Task.sleep(for: .seconds(delay)) }
    }
}

extension OpenAIServer {
    /// Serves until SIGTERM/SIGINT, then drains: the HTTP server stops accepting and finishes
    /// in-flight responses, then the engine stops. Returns normally after a graceful drain.
    /// `frontEnds` (the gRPC API) run beside the HTTP server: told of shutdown after it, before the
    /// engine (service-lifecycle stops services in reverse order).
    public func run(frontEnds: [any Service] = []) async throws {
        let app = makeApplication()
        var cfg = ServiceGroupConfiguration(
            services: [.init(service: EngineService(scheduler: scheduler, drainTimeout: config.drainTimeout))]
                + frontEnds.map { .init(service: $0) } + [
                .init(service: app),
                .init(service: DrainNotifier(server: self, delay: config.unreadyDelay)),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // Past the server's own drain deadline (DrainNotifier), time for the cut responses to
        // write their error event and close.
        cfg.maximumGracefulShutdownDuration = .seconds(config.drainTimeout + config.unreadyDelay + 5)
        let group = ServiceGroup(configuration: cfg)
        try await group.run()
    }
}
