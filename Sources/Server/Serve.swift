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

extension OpenAIServer {
    /// Serves until SIGTERM/SIGINT, then drains: the HTTP server stops accepting and finishes
    /// in-flight responses, then the engine stops. Returns normally after a graceful drain.
    public func run() async throws {
        let app = makeApplication()
        var cfg = ServiceGroupConfiguration(
            services: [
                .init(service: EngineService(scheduler: scheduler, drainTimeout: config.drainTimeout)),
                .init(service: app),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        cfg.maximumGracefulShutdownDuration = .seconds(config.drainTimeout + 1)
        let group = ServiceGroup(configuration: cfg)
        try await group.run()
    }
}
