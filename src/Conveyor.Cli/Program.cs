using Conveyor.Cli.CommandLine;

return await CliApp.ForConsole().RunAsync(args).ConfigureAwait(false);
