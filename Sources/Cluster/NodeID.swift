/// A node of the emulated ccNUMA machine (one `disco node` process), as the
/// coordinator numbers them from 0 in join order. The one definition every module
/// uses: the directory's sharer sets, membership, placement and the node runtime.
public typealias NodeID = Int
