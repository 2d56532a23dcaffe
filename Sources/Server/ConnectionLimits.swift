import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request head has not arrived in full within `timeout` of the
/// connection opening, or within `keepAlive` of the previous response ending (an idle
/// keep-alive connection may wait for its next request up to the idle timeout, then has the
/// header timeout for the head). The idle timeout alone does not stop a client that trickles a
/// head one byte at a time (every byte resets it); this deadline does.
final class HeaderTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let timeout: TimeAmount
    let keepAlive: TimeAmount
    private var deadline: Scheduled<Void>?
    /// Requests whose head arrived and whose response has not ended (pipelining can make it > 1).
    private var inFlight = 0

    init(timeout: TimeAmount, keepAlive: TimeAmount) {
        self.timeout = timeout
        self.keepAlive = keepAlive
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, timeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { disarm() }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, timeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            inFlight += 1
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inFlight = max(0, inFlight - 1)
            if inFlight == 0 { arm(context, keepAlive) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext, _ after: TimeAmount) {
        disarm()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: after) {
            bound.value.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}

extension ServerConfig {
    /// The HTTP/1 server with the connection limits: idle connections (and request heads or
    /// bodies that stop arriving) close after `idleTimeout`, a request head must arrive within
    /// `headerTimeout`.
    public var httpServer: HTTPServerBuilder {
        let header = TimeAmount.nanoseconds(Int64(headerTimeout * 1e9))
        let idle = TimeAmount.nanoseconds(Int64(idleTimeout * 1e9))
        return .http1(configuration: .init(
            additionalChannelHandlers: [HeaderTimeoutHandler(timeout: header, keepAlive: idle + header)],
            idleTimeout: idle))
    }
}
