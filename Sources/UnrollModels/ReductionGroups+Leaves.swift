// The halving-tree sum of `ReductionGroups` for callers outside this module whose leaves are not
// row blocks of one layer: the sequence task runs each group's sequences through the whole model
// (all its windows) and adds the groups' gradients and losses with this tree, the same one the
// layers' grouped gradients use.
extension ReductionGroups {
    /// result (n) += the halving-tree sum over `groups` groups of leaf(q, out), where `leaf`
    /// overwrites `out` (n floats) with group q's contribution. Leaves run in group order, one at a
    /// time. A rank holding groups [r·groups, (r+1)·groups) of a batch whose group count is a power
    /// of two times `groups` holds a whole subtree: the communicator's fold over the ranks then
    /// completes the tree of the whole batch (see ReductionGroups).
    public func sumLeaves(groups: Int, into result: UnsafeMutablePointer<Float>, count n: Int,
                          leaf: (_ q: Int, _ out: UnsafeMutablePointer<Float>) -> Void) {
        sum(groups: groups, into: result, count: n, leaf: leaf)
    }
}
