using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RabbitMQ.Client;

namespace Conveyor.Amqp.Tests;

/// <summary>
/// A RabbitMQ broker this test class owns, so it may kill and restart it: its own epmd, node name, ports and data
/// directory (the same way ./test.sh starts the shared one). Needs the Debian rabbitmq-server package, which ./test.sh
/// installs for this project.
/// </summary>
public sealed class PrivateRabbit : IAsyncLifetime
{
    private const string Bin = "/usr/lib/rabbitmq/bin";
    private readonly string _dir = Directory.CreateTempSubdirectory("conveyor-test-rabbit-").FullName;
    private readonly int _port = FreePort();
    private readonly int _distPort = FreePort();
    private readonly int _epmdPort = FreePort();
    private Process? _epmd;
    private Process? _broker;

    public Uri Uri => new($"amqp://guest:guest@127.0.0.1:{_port}/");

    public async Task InitializeAsync()
    {
        if (!File.Exists(Path.Combine(Bin, "rabbitmq-server")))
            throw new InvalidOperationException($"{Bin}/rabbitmq-server is missing: install it with apt-get install rabbitmq-server (./test.sh does).");
        Directory.CreateDirectory(Path.Combine(_dir, "mnesia"));
        Directory.CreateDirectory(Path.Combine(_dir, "log"));
        await File.WriteAllTextAsync(Path.Combine(_dir, "enabled_plugins"), "[].");
        await File.WriteAllTextAsync(Path.Combine(_dir, "rabbitmq.conf"), $"listeners.tcp.default = 127.0.0.1:{_port}\nloopback_users.guest = true\n");
        _epmd = Start("epmd", $"-address 127.0.0.1 -port {_epmdPort}");
        await StartBrokerAsync();
    }

    /// <summary>Kills the broker (SIGKILL to the whole process tree: no clean shutdown) and starts it again on the same data.</summary>
    public async Task RestartAsync(Func<Task>? whileDown = null)
    {
        await KillBrokerAsync();
        if (whileDown is not null) await whileDown();
        await StartBrokerAsync();
    }

    private async Task StartBrokerAsync()
    {
        _broker = Start(Path.Combine(Bin, "rabbitmq-server"), "");
        var deadline = DateTime.UtcNow.AddSeconds(120);
        var factory = new ConnectionFactory { Uri = Uri, AutomaticRecoveryEnabled = false };
        while (true)
        {
            try
            {
                await using var connection = await factory.CreateConnectionAsync();
                return;
            }
            catch (Exception) when (DateTime.UtcNow < deadline && !_broker.HasExited)
            {
                await Task.Delay(200);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"The private RabbitMQ did not start (logs in {_dir}/log, exit {(_broker.HasExited ? _broker.ExitCode : -1)}).", e);
            }
        }
    }

    private async Task KillBrokerAsync()
    {
        if (_broker is null) return;
        if (!_broker.HasExited) _broker.Kill(entireProcessTree: true);
        await _broker.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        _broker.Dispose();
        _broker = null;
    }

    private Process Start(string file, string arguments)
    {
        var info = new ProcessStartInfo(file, arguments) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        info.Environment["HOME"] = _dir;
        info.Environment["RABBITMQ_NODENAME"] = $"conveyor-amqp-test-{Environment.ProcessId}@localhost";
        info.Environment["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1";
        info.Environment["RABBITMQ_NODE_PORT"] = _port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        info.Environment["RABBITMQ_DIST_PORT"] = _distPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        info.Environment["ERL_EPMD_ADDRESS"] = "127.0.0.1";
        info.Environment["ERL_EPMD_PORT"] = _epmdPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        info.Environment["RABBITMQ_MNESIA_BASE"] = Path.Combine(_dir, "mnesia");
        info.Environment["RABBITMQ_LOG_BASE"] = Path.Combine(_dir, "log");
        info.Environment["RABBITMQ_CONFIG_FILE"] = Path.Combine(_dir, "rabbitmq");
        info.Environment["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(_dir, "enabled_plugins");
        info.Environment["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}";
        var process = Process.Start(info)!;
        // Drain the pipes so a chatty broker never blocks on a full one.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async Task DisposeAsync()
    {
        await KillBrokerAsync();
        if (_epmd is { HasExited: false }) _epmd.Kill(entireProcessTree: true);
        _epmd?.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
