namespace Conveyor.Submissions;

/// <summary>A submission a reservation may take chunks from, as the store found it (in the request's order).</summary>
public readonly record struct SubmissionCandidate(long Id, long? LabelValue, long Ready, long Reserved);

/// <summary>
/// Decides how many chunks to take from which submission. The store lists candidates already in the request's
/// <see cref="SubmissionOrder"/> (oldest, newest, random); this class adds prefer-distinct on top, which is what makes the
/// strategies composable: ordering decides among equals, prefer-distinct decides who is equal.
/// </summary>
public static class ReservationPlanner
{
    /// <summary>Without prefer-distinct a store needs no more candidates than chunks asked for (each has at least one ready).</summary>
    public const int MaxDistinctCandidates = 10_000;

    public static List<(long SubmissionId, int Count)> Plan(IReadOnlyList<SubmissionCandidate> candidates, int max, bool preferDistinct)
    {
        var plan = new List<(long, int)>();
        if (!preferDistinct)
        {
            var left = max;
            foreach (var candidate in candidates)
            {
                if (left == 0) break;
                if (candidate.Ready <= 0) continue;
                var take = (int)Math.Min(candidate.Ready, left);
                plan.Add((candidate.Id, take));
                left -= take;
            }
            return plan;
        }

        // Prefer-distinct: each chunk goes to the label value with the fewest chunks in flight (reserved now, plus taken by
        // this plan); among equals, the one whose first ready submission comes first in the request's order. A label value
        // with a thousand queued submissions therefore gets no more consumers than one with a single submission.
        var groups = new Dictionary<long, Group>();
        var order = new List<Group>();
        foreach (var candidate in candidates)
        {
            var key = candidate.LabelValue ?? NullKey;
            if (!groups.TryGetValue(key, out var group))
            {
                group = new Group();
                groups[key] = group;
                order.Add(group);
            }
            group.InFlight += candidate.Reserved;
            if (candidate.Ready > 0) group.Ready.Add([candidate.Id, candidate.Ready]);
        }
        var taken = new Dictionary<long, int>();
        var takenOrder = new List<long>();
        for (var n = 0; n < max; n++)
        {
            Group? best = null;
            foreach (var group in order)
            {
                if (group.Next >= group.Ready.Count) continue;
                if (best is null || group.InFlight < best.InFlight) best = group;
            }
            if (best is null) break;
            var slot = best.Ready[best.Next];
            if (!taken.TryGetValue(slot[0], out var count)) takenOrder.Add(slot[0]);
            taken[slot[0]] = count + 1;
            best.InFlight++;
            if (--slot[1] == 0) best.Next++;
        }
        foreach (var id in takenOrder) plan.Add((id, taken[id]));
        return plan;
    }

    // Submissions without the label form one group of their own.
    private const long NullKey = long.MinValue;

    private sealed class Group
    {
        public long InFlight;
        public int Next;
        public readonly List<long[]> Ready = [];
    }
}
