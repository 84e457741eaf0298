/// Pages of frames between VMs of one node that move by remapping instead of copying
/// (docs/monitor.md, "Pages that move by remapping"), as pure bookkeeping: which machine
/// frame a VM's guest page has lent, and which guest pages of which VMs map it now.
///
/// A NIC lends a whole page of a frame it sends (the lender's own frame, write-protected
/// from then on); a receiving NIC maps it into a whole page of its receive buffer (a
/// borrower, read-only). A borrower that writes copies the page into its own frame first
/// and gives it back; a lender that writes (or moves, or ends) first makes every borrower
/// copy, then writes its own frame again. A loan nobody borrowed ends once the frames
/// that carried it have been switched.
///
/// No I/O: the node copies and maps; this only says who holds what.
public struct PageLoanIndex: Sendable, Equatable {
    public typealias Sharer = BufferCacheIndex.Sharer

    public struct Loan: Sendable, Equatable {
        public var lender: Sharer
        public var borrowers: Set<Sharer>
    }

    /// Machine frame → its loan.
    public private(set) var loans: [UInt64: Loan] = [:]
    /// Loans made or left without borrowers since the last `settle` (only these can end
    /// there: the others have borrowers).
    private var unsettled: Set<UInt64> = []

    public init() {}

    /// Guest pages mapping a lent frame now, over every VM.
    public var mappings: Int { loans.values.reduce(0) { $0 + $1.borrowers.count } }

    public func isLent(_ frame: UInt64) -> Bool { loans[frame] != nil }

    /// `lender` lends its own `frame` (again: a loan already made stays as it is).
    public mutating func lend(_ frame: UInt64, by lender: Sharer) {
        if loans[frame] == nil {
            loans[frame] = Loan(lender: lender, borrowers: [])
            unsettled.insert(frame)
        }
    }

    /// `borrower` maps lent `frame`; false if it is not lent (any more).
    public mutating func borrow(_ frame: UInt64, by borrower: Sharer) -> Bool {
        guard loans[frame] != nil else { return false }
        loans[frame]!.borrowers.insert(borrower)
        return true
    }

    /// `borrower` no longer maps `frame` (it copied it, or its page was replaced).
    public mutating func giveBack(_ frame: UInt64, by borrower: Sharer) {
        loans[frame]?.borrowers.remove(borrower)
        if loans[frame]?.borrowers.isEmpty == true { unsettled.insert(frame) }
    }

    /// The loan of `frame` ends (its lender writes it, moves it or goes): the borrowers,
    /// who must copy it before the lender changes it.
    public mutating func end(_ frame: UInt64) -> [Sharer] {
        (loans.removeValue(forKey: frame)?.borrowers).map { $0.sorted() } ?? []
    }

    /// Ends every loan that nobody borrowed: their lenders, whose pages are theirs alone
    /// again. Only when no frame that carries a loan waits to be switched: until then a
    /// loan must stay, even with no borrower, so that its lender's write fills those frames.
    public mutating func settle() -> [Sharer] {
        guard !unsettled.isEmpty else { return [] }
        var ended: [Sharer] = []
        for frame in unsettled {
            if let l = loans[frame], l.borrowers.isEmpty {
                loans[frame] = nil
                ended.append(l.lender)
            }
        }
        unsettled.removeAll(keepingCapacity: true)
        return ended.sorted()
    }

    /// VM `vm` ended: its borrowed pages are given back (its own loans are ended by its pages).
    public mutating func giveBackAll(vm: UInt32) {
        for frame in Array(loans.keys) {
            loans[frame]!.borrowers = loans[frame]!.borrowers.filter { $0.vm != vm }
            if loans[frame]!.borrowers.isEmpty { unsettled.insert(frame) }
        }
    }
}

/// The node's page loans: the index, shared by the node's VMs (one thread), with the
/// way to reach a VM whose borrowed page must be copied.
public final class PageLoans {
    public var index = PageLoanIndex()
    /// The node's VM with this id, if it runs here.
    public var vm: (UInt32) -> NodeVM? = { _ in nil }
    /// Whole pages of frames lent instead of copied out (each time a frame carries one).
    public var pagesLent: UInt64 = 0
    /// Lent pages mapped into a receive buffer instead of copied in.
    public var pagesRemapped: UInt64 = 0
    /// Pages copied out of a lent frame because its lender or a borrower wrote.
    public var copiesOnWrite: UInt64 = 0
    public init() {}

    /// Loans nobody borrowed end: the lenders' pages are writable as before (after every
    /// frame sent so far has been switched).
    public func settle() {
        for l in index.settle() { vm(l.vm)?.loanEnded(l.guestPage) }
    }
}
