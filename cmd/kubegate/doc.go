// Command kubegate is the kubegate gateway and its tools.
//
//	kubegate demo [--dir DIR]   start a local cluster in the foreground
package main
