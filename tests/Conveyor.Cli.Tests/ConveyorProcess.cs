using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Conveyor.Cli.Tests;

/// <summary>
/// Starts the built <c>conveyor</c> (copied beside the tests as a project reference) with <c>dotnet conveyor.dll</c>.
/// Every wait is bounded; the server is awaited through the line it prints once bound, never a sleep.
/// </summary>
internal sealed partial class ConveyorProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly string _dataDirectory;
    private readonly bool _ownsDataDirectory;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<string> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ConveyorProcess(Process process, string dataDirectory, bool ownsDataDirectory)
    {
        _process = process;
        _dataDirectory = dataDirectory;
        _ownsDataDirectory = ownsDataDirectory;
    }

    public string BaseAddress { get; private set; } = "";

    public int ProcessId => _process.Id;

    public static string BinaryPath => Path.Combine(AppContext.BaseDirectory, "conveyor.dll");

    /// <summary>
    /// Starts <c>conveyor serve --port 0</c> and waits for its "listening" line. Without a data directory it uses a
    /// fresh one and deletes it on dispose; a given one is left for the caller (restart tests reuse it).
    /// </summary>
    public static async Task<ConveyorProcess> StartServerAsync(string? dataDirectory = null, string? workingDirectory = null)
    {
        var owns = dataDirectory is null;
        dataDirectory ??= Directory.CreateTempSubdirectory("conveyor-cli-e2e-").FullName;
        var process = new Process { StartInfo = StartInfo(["serve", "--host", "127.0.0.1", "--port", "0", "--data", dataDirectory]) };
        if (workingDirectory is not null) process.StartInfo.WorkingDirectory = workingDirectory;
        var server = new ConveyorProcess(process, dataDirectory, owns);
        process.OutputDataReceived += (_, e) => server.OnLine(e.Data, isError: false);
        process.ErrorDataReceived += (_, e) => server.OnLine(e.Data, isError: true);
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => server._listening.TrySetException(
            new InvalidOperationException($"conveyor serve exited before listening:\n{server.Transcript()}"));

        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            server.BaseAddress = await server._listening.Task.WaitAsync(StartTimeout);
        }
        catch (TimeoutException)
        {
            await server.DisposeAsync();
            throw new TimeoutException(
                $"conveyor serve printed no 'Conveyor listening on' line within {StartTimeout}:\n{server.Transcript()}");
        }

        return server;
    }

    /// <summary>Runs one client command to completion.</summary>
    public static async Task<(int ExitCode, string Out, string Err)> RunAsync(IReadOnlyList<string> args)
    {
        using var process = new Process { StartInfo = StartInfo(args) };
        process.Start();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(CommandTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"conveyor {string.Join(' ', args)} did not finish within {CommandTimeout}.");
        }

        return (process.ExitCode, await output, await error);
    }

    /// <summary>Sends SIGTERM and returns the exit code of the graceful shutdown.</summary>
    public async Task<int> StopAsync()
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(StopTimeout);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"conveyor serve did not stop within {StopTimeout} of SIGTERM:\n{Transcript()}");
        }

        return _process.ExitCode;
    }

    /// <summary>kill -9: the server gets no chance to flush or clean up.</summary>
    public async Task KillHardAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync().WaitAsync(StopTimeout);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        if (!_ownsDataDirectory)
        {
            return;
        }

        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp directory must not fail the test.
        }
    }

    private static ProcessStartInfo StartInfo(IReadOnlyList<string> args)
    {
        // DOTNET_HOST_PATH is set by `dotnet test`; it names the same host that runs these tests.
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : "dotnet";
        var info = new ProcessStartInfo(host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(BinaryPath);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        // The machine's own settings must not leak into what the test asserts.
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("CONVEYOR_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        return info;
    }

    private void OnLine(string? line, bool isError)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.Append(isError ? "stderr: " : "stdout: ").AppendLine(line);
        }

        if (!isError && ListeningLine().Match(line) is { Success: true } match)
        {
            _listening.TrySetResult(match.Groups["address"].Value);
        }
    }

    private string Transcript()
    {
        lock (_output)
        {
            return _output.ToString();
        }
    }

    [GeneratedRegex(@"^Conveyor listening on (?<address>http://\S+:\d+)")]
    private static partial Regex ListeningLine();
}
