namespace Conveyor.Server.Dashboard;

/// <summary>One second of the server's life: what happened in it (deltas) and how full the queues were at its end.</summary>
internal readonly record struct StatsSample(
    DateTimeOffset At, long Enqueued, long Completed, long Failed, long Scheduled, long Available, long Running, long Dead);

/// <summary>
/// The last <see cref="Capacity"/> samples, oldest first: a fixed ring so memory stays constant however long the server
/// runs. Written by the sampler, read by any number of requests; a lock is enough at one write a second.
/// </summary>
internal sealed class StatsHistory
{
    public const int DefaultCapacity = 900;

    private readonly StatsSample[] _ring;
    private readonly Lock _lock = new();
    private int _next;
    private int _count;

    public StatsHistory(int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _ring = new StatsSample[capacity];
    }

    public int Capacity => _ring.Length;

    public void Add(StatsSample sample)
    {
        lock (_lock)
        {
            _ring[_next] = sample;
            _next = (_next + 1) % _ring.Length;
            if (_count < _ring.Length) _count++;
        }
    }

    /// <summary>The samples taken after <paramref name="sinceUnixMs"/> (all when null), oldest first.</summary>
    public List<StatsSample> Snapshot(long? sinceUnixMs = null)
    {
        lock (_lock)
        {
            var result = new List<StatsSample>(_count);
            var start = (_next - _count + _ring.Length) % _ring.Length;
            for (var i = 0; i < _count; i++)
            {
                var sample = _ring[(start + i) % _ring.Length];
                if (sinceUnixMs is null || sample.At.ToUnixTimeMilliseconds() > sinceUnixMs) result.Add(sample);
            }
            return result;
        }
    }
}
