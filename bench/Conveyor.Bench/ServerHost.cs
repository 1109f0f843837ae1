using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Conveyor.Bench;

/// <summary>
/// Starts `conveyor serve --port 0 --data &lt;temp dir&gt;`, learns its URL from the line
/// <c>Conveyor listening on http://HOST:PORT (data: DIR)</c>, and kills it (whole tree) on dispose.
/// </summary>
internal sealed partial class ServerHost : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dataDir;
    private readonly bool _keepData;
    private readonly ConcurrentQueue<string> _tail = new();
    private string? _postgres;
    private string? _postgresSchema;

    public Uri Url { get; private set; } = null!;
    public string Description { get; }

    private ServerHost(Process process, string dataDir, bool keepData, string description)
    {
        _process = process;
        _dataDir = dataDir;
        _keepData = keepData;
        Description = description;
    }

    [GeneratedRegex(@"Conveyor listening on (?<url>https?://\S+)")]
    private static partial Regex ListeningLine();

    public static async Task<ServerHost> StartAsync(string? conveyorPath, bool keepData, string? postgres, CancellationToken ct)
    {
        var target = conveyorPath ?? FindConveyorDll()
            ?? throw new BenchException(
                "could not find src/Conveyor.Cli/bin/{Release,Debug}/net10.0/conveyor.dll above the current directory. " +
                "Build the server first (dotnet build -c Release src/Conveyor.Cli), or pass --conveyor PATH or --server URL.");
        if (!File.Exists(target))
        {
            throw new BenchException($"--conveyor '{target}' does not exist.");
        }
        if (target.Contains("/Debug/", StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"conveyor-bench: warning: starting a Debug build ({target}); build -c Release for real figures.");
        }

        var dataDir = Directory.CreateTempSubdirectory("conveyor-bench-").FullName;
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (target.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            psi.FileName = "dotnet";
            psi.ArgumentList.Add(target);
        }
        else
        {
            psi.FileName = target;
        }
        foreach (var a in new[] { "serve", "--port", "0", "--data", dataDir })
        {
            psi.ArgumentList.Add(a);
        }
        // Each run gets a schema of its own, dropped at the end: a shared schema only grows, and its figures drift
        // down from run to run with the size of its tables and indexes.
        var schema = postgres is null ? null : $"bench_{DateTime.UtcNow:yyyyMMddHHmmss}_{Random.Shared.Next(1000, 9999)}";
        if (postgres is not null)
        {
            psi.ArgumentList.Add("--postgres");
            psi.ArgumentList.Add(postgres);
            psi.ArgumentList.Add("--postgres-schema");
            psi.ArgumentList.Add(schema!);
        }
        // The description is printed: do not show a Postgres password.
        var description = $"{psi.FileName} {string.Join(' ', psi.ArgumentList.Select(a => ReferenceEquals(a, postgres) ? "\"<connection string>\"" : a))}";

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var host = new ServerHost(process, dataDir, keepData, description) { _postgres = postgres, _postgresSchema = schema };
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            host.Remember(e.Data);
            var m = ListeningLine().Match(e.Data);
            if (m.Success && Uri.TryCreate(m.Groups["url"].Value, UriKind.Absolute, out var url))
            {
                listening.TrySetResult(url);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                host.Remember(e.Data);
            }
        };
        process.Exited += (_, _) => listening.TrySetException(
            new BenchException($"the server exited (code {SafeExitCode(process)}) before it said where it listens:\n{host.Tail()}"));

        Console.Error.WriteLine($"conveyor-bench: starting {description}");
        if (!process.Start())
        {
            throw new BenchException($"could not start {description}");
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            host.Url = await listening.Task.WaitAsync(TimeSpan.FromSeconds(60), ct);
        }
        catch (TimeoutException)
        {
            await host.DisposeAsync();
            throw new BenchException($"the server did not print 'Conveyor listening on …' within 60 s:\n{host.Tail()}");
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
        return host;
    }

    /// <summary>Last lines the server printed, for error messages.</summary>
    /// <summary>The server process's resident set size (VmRSS, Linux), in bytes.</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        throw new BenchException("no VmRSS for the server process (not Linux?)");
    }

    public string Tail() => string.Join('\n', _tail);

    private void Remember(string line)
    {
        _tail.Enqueue(line);
        while (_tail.Count > 40 && _tail.TryDequeue(out _))
        {
        }
    }

    private static string SafeExitCode(Process p)
    {
        try
        {
            return p.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    /// <summary>src/Conveyor.Cli/bin/Release (else Debug)/net10.0/conveyor.dll, searching up from here.</summary>
    private static string? FindConveyorDll()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var cli = Path.Combine(dir.FullName, "src", "Conveyor.Cli", "bin");
                if (!Directory.Exists(cli))
                {
                    continue;
                }
                var best = new[] { "Release", "Debug" }
                    .Select(c => new FileInfo(Path.Combine(cli, c, "net10.0", "conveyor.dll")))
                    .Where(f => f.Exists)
                    .FirstOrDefault();
                if (best is not null)
                {
                    return best.FullName;
                }
            }
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
        {
            Console.Error.WriteLine($"conveyor-bench: warning: could not stop the server cleanly: {e.Message}");
        }
        _process.Dispose();
        if (_keepData)
        {
            Console.Error.WriteLine($"conveyor-bench: server data kept in {_dataDir}" +
                (_postgresSchema is null ? "" : $" and PostgreSQL schema {_postgresSchema}"));
        }
        else if (_postgres is not null)
        {
            try
            {
                await using var connection = new Npgsql.NpgsqlConnection(_postgres);
                await connection.OpenAsync();
                await using var drop = new Npgsql.NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{_postgresSchema}\" CASCADE", connection);
                await drop.ExecuteNonQueryAsync();
            }
            catch (Npgsql.NpgsqlException e)
            {
                Console.Error.WriteLine($"conveyor-bench: warning: could not drop PostgreSQL schema {_postgresSchema}: {e.Message}");
            }
        }
        if (!_keepData)
        {
            try
            {
                Directory.Delete(_dataDir, recursive: true);
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"conveyor-bench: warning: could not delete {_dataDir}: {e.Message}");
            }
        }
    }
}

/// <summary>A failure the user can act on; printed without a stack trace.</summary>
internal sealed class BenchException(string message) : Exception(message);
