using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Conveyor.EndToEnd.Tests;

/// <summary>The built <c>conveyor serve</c> running as its own process, so tests can SIGTERM or kill -9 it.</summary>
public sealed partial class ConveyorProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _output = new();

    private ConveyorProcess(Process process) => _process = process;

    public Uri BaseAddress { get; private set; } = null!;

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    public static string BinaryPath
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Directory.Build.props"))) dir = dir.Parent;
            if (dir is null) throw new InvalidOperationException("Cannot find the repository root above " + AppContext.BaseDirectory);
            var configuration = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
            var path = Path.Combine(dir.FullName, "src", "Conveyor.Cli", "bin", configuration, "net10.0", "conveyor.dll");
            return File.Exists(path) ? path : throw new FileNotFoundException("Build src/Conveyor.Cli first.", path);
        }
    }

    /// <summary>Starts <c>conveyor serve --port 0 --data DIR</c> and returns once it printed its address.</summary>
    public static async Task<ConveyorProcess> StartAsync(string dataDirectory, params string[] extraArgs)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { BinaryPath, "serve", "--port", "0", "--data", dataDirectory }.Concat(extraArgs)) info.ArgumentList.Add(arg);
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var server = new ConveyorProcess(process);
        process.OutputDataReceived += (_, e) => server.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => server.OnLine(e.Data);
        process.Exited += (_, _) => server._listening.TrySetException(new InvalidOperationException("conveyor exited before listening:\n" + server.Output));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        server.BaseAddress = await server._listening.Task.WaitAsync(TimeSpan.FromSeconds(60));
        return server;
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
        var match = ListeningLine().Match(line);
        if (match.Success) _listening.TrySetResult(new Uri(match.Groups[1].Value));
    }

    [GeneratedRegex(@"^Conveyor listening on (http://\S+)")]
    private static partial Regex ListeningLine();

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    /// <summary>SIGTERM, then the exit code once it has stopped.</summary>
    public async Task<int> TerminateAsync()
    {
        Assert.Equal(0, kill(_process.Id, 15));
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return _process.ExitCode;
    }

    /// <summary>kill -9: no chance to flush or clean up.</summary>
    public async Task KillHardAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        _process.Dispose();
    }
}
