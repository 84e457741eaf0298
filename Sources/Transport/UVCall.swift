import CLibUV

/// Every libuv status code goes through here: negative is an error carrying uv_strerror.
@inline(__always)
func uvCheck(_ status: Int32, _ operation: @autoclosure () -> String) throws(TransportError) {
    if status < 0 { throw uvError(status, operation()) }
}

func uvError(_ status: Int32, _ operation: String) -> TransportError {
    .system(operation: operation, code: status, message: String(cString: uv_strerror(status)))
}

func uvErrorName(_ status: Int) -> String {
    String(cString: uv_strerror(Int32(truncatingIfNeeded: status)))
}

/// Allocates a libuv handle or request of type `T`, zeroed. Handles must not move, so
/// they live on the heap and are freed only in their close callback.
func uvAllocate<T>(_: T.Type) -> UnsafeMutablePointer<T> {
    let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
    UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
    return p
}

@inline(__always) func asHandle<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_handle_t.self)
}

@inline(__always) func asStream<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_stream_t.self)
}
