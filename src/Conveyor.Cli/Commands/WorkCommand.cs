using System.CommandLine;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Conveyor.Cli.CommandLine;
using Conveyor.Cli.Output;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.Cli.Commands;

// Inside the namespace on purpose: Conveyor.Core's public types live in the enclosing 'Conveyor' namespace and would
// otherwise win over the client's types of the same names.
using Conveyor.Client;

/// <summary>Validated inputs of <c>conveyor work</c>.</summary>
internal sealed record WorkOptions(
    string Queue, int Concurrency, int LeaseMs, long TimeoutMs, long GraceMs, string? Worker, IReadOnlyList<string> Command);

/// <summary>
/// <c>conveyor work QUEUE -- COMMAND [ARGS…]</c>: a language-agnostic worker built on the SDK's worker host. Each job
/// runs the command once with the payload JSON on stdin and CONVEYOR_JOB_ID / _KIND / _ATTEMPT / _QUEUE in its
/// environment; exit 0 completes the job with stdout as the JSON result (empty: null), anything else fails it with the
/// tail of stderr as the error (retried with the server's backoff). SIGTERM or Ctrl-C stops leasing, lets running
/// commands finish within the grace period, and hands back the rest.
/// </summary>
internal static class WorkCommand
{
    public const int DefaultConcurrency = 1;
    public const int DefaultLeaseMs = 30_000;
    public const long DefaultTimeoutMs = 300_000;
    public const long DefaultGraceMs = 20_000;

    private const int ErrorTail = 2000;

    public static Command Build(
        Action<Command, Func<ParseResult, WorkOptions>, Func<ConveyorClient, WorkOptions, TextWriter, CancellationToken, Task<int>>> setClientAction)
    {
        var queue = Options.Queue();
        var concurrency = Options.Int("--concurrency", $"Most commands running at once, 1 to 1000 [default: {DefaultConcurrency}]", 1, 1000);
        var leaseMs = Options.Int(
            "--lease-ms", $"Lease per job, 1000 to 43200000; heartbeats renew it while the command runs [default: {DefaultLeaseMs}]", 1000, 43_200_000);
        var timeoutMs = Options.Long("--timeout-ms", $"Kill a command running longer and fail its attempt [default: {DefaultTimeoutMs}]", 1);
        var graceMs = Options.Long(
            "--grace-ms", $"On SIGTERM/Ctrl-C, how long running commands may take to finish before they are killed [default: {DefaultGraceMs}]", 0);
        var worker = Options.String("--worker", "A name for the leases' owner, shown in `conveyor get` [default: host:pid]");
        var command = new Argument<string[]>("command")
        {
            Description = "The command to run once per job, and its arguments; put it after --",
            Arity = ArgumentArity.OneOrMore,
        };

        var work = new Command(
            "work",
            "Work on a queue by running a command once per job: payload JSON on stdin; CONVEYOR_JOB_ID, CONVEYOR_JOB_KIND, "
            + "CONVEYOR_JOB_ATTEMPT and CONVEYOR_JOB_QUEUE in the environment; exit 0 completes the job with stdout as its JSON "
            + "result (empty: null), non-zero fails it with stderr as the error. Runs until SIGTERM or Ctrl-C. "
            + "Example: conveyor work emails --concurrency 4 -- ./send-email.sh")
        {
            queue, concurrency, leaseMs, timeoutMs, graceMs, worker, command,
        };
        setClientAction(
            work,
            parseResult => new WorkOptions(
                parseResult.GetRequiredValue(queue),
                parseResult.GetValue(concurrency) ?? DefaultConcurrency,
                parseResult.GetValue(leaseMs) ?? DefaultLeaseMs,
                parseResult.GetValue(timeoutMs) ?? DefaultTimeoutMs,
                parseResult.GetValue(graceMs) ?? DefaultGraceMs,
                parseResult.GetValue(worker),
                parseResult.GetRequiredValue(command)),
            RunAsync);
        return work;
    }

    /// <summary>Runs the worker until <paramref name="cancellationToken"/>, SIGTERM or SIGINT; returns 0 after a graceful stop.</summary>
    public static async Task<int> RunAsync(ConveyorClient client, WorkOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var console = new SerialWriter(output);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnSignal(PosixSignalContext context)
        {
            // Handled here, so the process is not torn down before the graceful stop below.
            context.Cancel = true;
            stop.Cancel();
        }

        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

        var grace = TimeSpan.FromMilliseconds(options.GraceMs);
        var services = new ServiceCollection();
        services.AddSingleton(client);
        services.AddLogging(logging => logging.AddProvider(new LineLoggerProvider(console)).SetMinimumLevel(LogLevel.Warning));
        services.AddConveyorWorker(o =>
            {
                if (options.Worker is { } name)
                {
                    o.WorkerName = name;
                }

                o.ShutdownGracePeriod = grace;
                o.Queue(
                    options.Queue,
                    concurrency: options.Concurrency,
                    timeout: TimeSpan.FromMilliseconds(options.TimeoutMs),
                    leaseDuration: TimeSpan.FromMilliseconds(options.LeaseMs));
            })
            .AddHandler<JsonElement?, JsonElement?>(options.Queue, (_, job, ct) => RunJobAsync(options.Command, job, console, ct));

        var provider = services.BuildServiceProvider();
        await using (provider.ConfigureAwait(false))
        {
            var hosted = provider.GetServices<IHostedService>().ToList();
            foreach (var service in hosted)
            {
                await service.StartAsync(cancellationToken).ConfigureAwait(false);
            }

            console.Line(
                $"working on '{options.Queue}' at {client.BaseAddress}, {options.Concurrency} at a time: {Describe(options.Command)} "
                + "(SIGTERM or Ctrl-C stops)");
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            console.Line($"stopping: no new jobs; running commands have {options.GraceMs} ms to finish, the rest go back to the queue");

            // Past the grace period (and a little for the last outcomes to reach the server) the host stops waiting.
            using var deadline = new CancellationTokenSource(grace + TimeSpan.FromSeconds(10));
            foreach (var service in hosted)
            {
                await service.StopAsync(deadline.Token).ConfigureAwait(false);
            }

            console.Line("stopped");
        }

        return ExitCodes.Success;
    }

    private static async Task<JsonElement?> RunJobAsync(IReadOnlyList<string> command, JobContext job, SerialWriter console, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var label = $"job {Number(job.Id)} ({job.Kind}, attempt {Number(job.Attempt)}/{Number(job.MaxAttempts)})";
        try
        {
            var result = await RunCommandAsync(command, job, cancellationToken).ConfigureAwait(false);
            console.Line($"{label} completed in {Elapsed(started)}");
            return result;
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            console.Line($"{label} failed in {Elapsed(started)}: {Text.OneLine(exception.Message)}");
            throw;
        }
        catch (OperationCanceledException)
        {
            console.Line($"{label} interrupted after {Elapsed(started)}: the command was killed");
            throw;
        }
    }

    private static async Task<JsonElement?> RunCommandAsync(IReadOnlyList<string> command, JobContext job, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false),
        };
        foreach (var argument in command.Skip(1))
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["CONVEYOR_JOB_ID"] = Number(job.Id);
        info.Environment["CONVEYOR_JOB_KIND"] = job.Kind;
        info.Environment["CONVEYOR_JOB_ATTEMPT"] = Number(job.Attempt);
        info.Environment["CONVEYOR_JOB_QUEUE"] = job.Queue;

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Win32Exception exception)
        {
            throw new CommandFailedException($"could not start '{command[0]}': {exception.Message}; check the command and its PATH");
        }

        // Read both pipes while the command runs, so a chatty command never blocks on a full pipe.
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.StandardInput.WriteAsync(job.RawPayload is { } payload ? payload.GetRawText() : "null").ConfigureAwait(false);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The command exited (or closed stdin) without reading its input: allowed, it may not need the payload.
        }

        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Timeout, lost lease or the end of the grace period: the command must not outlive its job.
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }

            throw;
        }

        var output = await stdout.ConfigureAwait(false);
        var error = await stderr.ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            var tail = error.Trim();
            if (tail.Length > ErrorTail)
            {
                tail = string.Concat("…", tail.AsSpan(tail.Length - ErrorTail));
            }

            throw new CommandFailedException($"exit code {Number(process.ExitCode)}" + (tail.Length > 0 ? $": {tail}" : " (nothing on stderr)"));
        }

        var text = output.Trim();
        if (text.Length == 0)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException exception)
        {
            var quoted = text.Length > 200 ? string.Concat(text.AsSpan(0, 200), "…") : text;
            throw new CommandFailedException(
                $"the command exited 0 but its stdout is not JSON ({exception.Message.Split(" LineNumber:")[0]}): {quoted}; "
                + "print a JSON result, or nothing for null");
        }
    }

    private static string Describe(IReadOnlyList<string> command) =>
        string.Join(' ', command.Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) || a.Contains('\'') ? $"'{a.Replace("'", "'\\''")}'" : a));

    private static string Number(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Elapsed(long started) =>
        Stopwatch.GetElapsedTime(started).TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture) + " ms";

    /// <summary>A command that failed; its message (exit code and stderr tail) becomes the job's error.</summary>
    private sealed class CommandFailedException(string message) : Exception(message);

    /// <summary>Whole lines from many concurrent jobs, never interleaved.</summary>
    private sealed class SerialWriter(TextWriter output)
    {
        private readonly Lock _lock = new();

        public void Line(string line)
        {
            lock (_lock)
            {
                output.WriteLine(line);
                output.Flush();
            }
        }
    }

    /// <summary>The worker host's warnings (server unreachable, lease lost) as one line each.</summary>
    private sealed class LineLoggerProvider(SerialWriter output) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new LineLogger(output);

        public void Dispose()
        {
        }

        private sealed class LineLogger(SerialWriter output) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (!IsEnabled(logLevel))
                {
                    return;
                }

                var level = logLevel >= LogLevel.Error ? "error" : "warning";
                var reason = exception is null ? "" : $" ({Text.OneLine(exception.Message)})";
                output.Line($"{level}: {Text.OneLine(formatter(state, exception))}{reason}");
            }
        }
    }
}
