import Foundation
import HTTPTypes

/// An error returned to the client as OpenAI-shaped JSON:
/// `{"error": {"message", "type", "param", "code"}}` with the HTTP status that fits.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    public var headers: [(HTTPField.Name, String)] = []

    public init(status: HTTPResponse.Status, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { message }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    static func wrongType(_ param: String, expected: String, got: JSONValue) -> APIError {
        invalid("'\(param)' must be \(expected), got \(got.typeName)", param: param, code: "invalid_type")
    }

    static func outOfRange(_ param: String, _ detail: String) -> APIError {
        invalid("'\(param)' \(detail)", param: param, code: "invalid_value")
    }

    var json: JSONValue {
        ["error": ["message": .string(message), "type": .string(type), "param": param.json, "code": code.json]]
    }
}
