namespace Conveyor.Server;

/// <summary>When this process started, for uptime figures.</summary>
internal sealed class ServerClock(TimeProvider time)
{
    private readonly long _started = time.GetTimestamp();

    public long UptimeMs => (long)time.GetElapsedTime(_started).TotalMilliseconds;
}
