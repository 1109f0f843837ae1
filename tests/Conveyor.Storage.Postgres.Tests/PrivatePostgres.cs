using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>
/// A PostgreSQL cluster of this test's own (temp data directory, loopback port), for the test that stops and starts the
/// database under a running server: the shared test database must not go away under the other tests. Uses the binaries
/// ./test.sh installs (Debian's postgresql package); runs them as the postgres user when we are root.
/// </summary>
internal sealed class PrivatePostgres : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string _directory;

    private PrivatePostgres(string bin, string directory, int port)
    {
        _bin = bin;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Timeout=3";

    public static async Task<PrivatePostgres> StartAsync()
    {
        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "pg_ctl")))
                .OrderByDescending(d => d, StringComparer.Ordinal).FirstOrDefault()
            : null;
        if (bin is null) throw new InvalidOperationException("PostgreSQL binaries are not in /usr/lib/postgresql/*/bin: run ./test.sh, which installs them.");
        var directory = Directory.CreateTempSubdirectory("conveyor-private-pg-").FullName;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            var postgres = new PrivatePostgres(bin, directory, port);
            if (Environment.UserName == "root") await Run("chown", "postgres:", directory);
            await postgres.As("initdb", "-D", Path.Combine(directory, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8");
            await postgres.StartAgainAsync();
            return postgres;
        }
    }

    /// <summary>Starts the (stopped) cluster and waits until it accepts connections.</summary>
    public Task StartAgainAsync() => As("pg_ctl", "-D", Path.Combine(_directory, "data"), "-l", Path.Combine(_directory, "postgres.log"), "-w", "-t", "60",
        "-o", $"-p {Port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={_directory} -c fsync=off", "start");

    /// <summary>Stops at once, like a crash: no checkpoint; committed work comes back from the WAL at the next start.</summary>
    public Task StopImmediatelyAsync() => As("pg_ctl", "-D", Path.Combine(_directory, "data"), "-m", "immediate", "-w", "-t", "60", "stop");

    private Task As(string tool, params string[] args)
    {
        var path = Path.Combine(_bin, tool);
        return Environment.UserName == "root" ? Run("runuser", ["-u", "postgres", "--", path, .. args]) : Run(path, args);
    }

    private static async Task Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {process.ExitCode}: {await output}{await error}");
    }

    public async ValueTask DisposeAsync()
    {
        try { await StopImmediatelyAsync(); } catch (InvalidOperationException) { /* already stopped */ }
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
