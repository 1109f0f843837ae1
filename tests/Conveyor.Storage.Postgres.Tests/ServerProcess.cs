using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>
/// A real <c>conveyor serve --postgres …</c> process (the built conveyor.dll copied beside the tests), in the manner of the
/// CLI tests' ConveyorProcess. Awaited through the line it prints once it listens; every wait is bounded.
/// </summary>
internal sealed partial class ServerProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<string> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("conveyor-pg-e2e-").FullName;

    private ServerProcess(Process process) => _process = process;

    public Uri BaseAddress { get; private set; } = null!;

    public int ProcessId => _process.Id;

    public static async Task<ServerProcess> StartAsync(string connectionString, string schema)
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : "dotnet";
        var info = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "conveyor.dll"));
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("CONVEYOR_", StringComparison.Ordinal)).ToList())
            info.Environment.Remove(name);
        var server = new ServerProcess(new Process { StartInfo = info, EnableRaisingEvents = true });
        foreach (var arg in new[] { "serve", "--host", "127.0.0.1", "--port", "0", "--data", server._dataDirectory, "--postgres", connectionString, "--postgres-schema", schema })
            info.ArgumentList.Add(arg);
        var process = server._process;
        process.OutputDataReceived += (_, e) => server.OnLine(e.Data, isError: false);
        process.ErrorDataReceived += (_, e) => server.OnLine(e.Data, isError: true);
        process.Exited += (_, _) => server._listening.TrySetException(
            new InvalidOperationException($"conveyor serve exited before listening:\n{server.Transcript()}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            server.BaseAddress = new Uri(await server._listening.Task.WaitAsync(StartTimeout));
        }
        catch (TimeoutException)
        {
            await server.DisposeAsync();
            throw new TimeoutException($"conveyor serve printed no 'Conveyor listening on' line within {StartTimeout}:\n{server.Transcript()}");
        }
        return server;
    }

    /// <summary>kill -9: no chance to close connections cleanly or release anything.</summary>
    public async Task KillHardAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    public string Transcript()
    {
        lock (_output) return _output.ToString();
    }

    private void OnLine(string? line, bool isError)
    {
        if (line is null) return;
        lock (_output) _output.Append(isError ? "stderr: " : "stdout: ").AppendLine(line);
        if (!isError && ListeningLine().Match(line) is { Success: true } match) _listening.TrySetResult(match.Groups["address"].Value);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        _process.Dispose();
        try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { }
    }

    [GeneratedRegex(@"^Conveyor listening on (?<address>http://\S+:\d+)")]
    private static partial Regex ListeningLine();
}
